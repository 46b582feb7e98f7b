//! The `aoe` command line: parsing (pure, unit-tested) and the commands themselves.
//!
//! Exit status: 0 on success, 1 when the operation failed (no answer, an error from the target,
//! a data mismatch, a file error), 2 for a bad command line.

use super::control::{self, IdentifyInfo, MaskEdit, Retry, Session, TargetInfo};
use super::engine::{Engine, EngineConfig, MAX_WINDOW, Op};
use super::frame::Address;
use super::port::NetPort;
use super::work::{self, Access, BenchResult, BenchSpec, PatternCheck, Transfer};
use super::{Error, Link};
use crate::net::LinkSpec;
use aoe_core::wire::EthernetAddress;
use aoe_core::wire::cfg::ConfigCommand;
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::time::{Duration, Instant};

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
    fn name(self) -> &'static str {
        match self {
            BenchMode::SeqRead => "seq-read",
            BenchMode::SeqWrite => "seq-write",
            BenchMode::RandRead => "rand-read",
            BenchMode::RandWrite => "rand-write",
        }
    }

    fn op(self) -> Op {
        match self {
            BenchMode::SeqRead | BenchMode::RandRead => Op::Read,
            BenchMode::SeqWrite | BenchMode::RandWrite => Op::Write,
        }
    }

    fn access(self) -> Access {
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

/// Parses a MAC as six hex octets with `:` or `-` separators, or twelve hex digits.
pub fn parse_mac(text: &str) -> Result<EthernetAddress, Usage> {
    let bad = || {
        Usage(format!(
            "bad MAC address {text:?}: expected e.g. 02:00:00:00:00:01"
        ))
    };
    let digits: String = text.chars().filter(|c| *c != ':' && *c != '-').collect();
    if digits.len() != 12 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (k, octet) in mac.iter_mut().enumerate() {
        *octet = u8::from_str_radix(&digits[2 * k..2 * k + 2], 16).map_err(|_| bad())?;
    }
    Ok(EthernetAddress(mac))
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

fn parse_seconds(flag: &str, text: &str) -> Result<Duration, Usage> {
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

fn parse_number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, Usage> {
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
            (Some(other), _) => Err(Usage(format!("unknown command {other:?} (see aoe --help)"))),
            (None, _) => Err(Usage("no command (see aoe --help)".to_string())),
        }
    }
}

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
pub fn run_on<L: Link + ?Sized>(
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

/// `02:00:00:00:00:01`, as `ip link` prints it.
pub fn mac_text(mac: EthernetAddress) -> String {
    let octets: Vec<String> = mac.0.iter().map(|b| format!("{b:02x}")).collect();
    octets.join(":")
}

/// A JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn size_text(sectors: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let bytes = (sectors * 512) as f64;
    if bytes >= (1u64 << 30) as f64 {
        format!("{:.1} GiB", bytes / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", bytes / (1u64 << 20) as f64)
    }
}

/// A target as JSON; `spf` is the sectors per frame on our port.
fn info_json(info: &TargetInfo, identity: Option<&IdentifyInfo>, spf: u8) -> String {
    let mut json = format!(
        "{{\"target\":\"e{}.{}\",\"shelf\":{},\"slot\":{},\"mac\":\"{}\",\"buffer_count\":{},\
         \"firmware_version\":{},\"sector_count\":{},\"sectors_per_frame\":{spf},\
         \"aoe_version\":{},\"config\":{}",
        info.shelf,
        info.slot,
        info.shelf,
        info.slot,
        mac_text(info.mac),
        info.buffer_count,
        info.firmware_version,
        info.sector_count,
        info.aoe_version,
        json_string(&String::from_utf8_lossy(&info.config_string)),
    );
    if let Some(id) = identity {
        let _ = write!(
            json,
            ",\"sectors\":{},\"bytes\":{},\"model\":{},\"serial\":{},\"firmware\":{}",
            id.sectors,
            id.sectors * 512,
            json_string(&id.model),
            json_string(&id.serial),
            json_string(&id.firmware)
        );
    }
    json.push('}');
    json
}

fn discover<L: Link + ?Sized>(
    cli: &Cli,
    link: &mut L,
    retry: Retry,
    out: &mut dyn std::io::Write,
) -> Result<(), Error> {
    let mut to = Address::EVERYONE;
    if let Some((shelf, slot)) = cli.target {
        to.shelf = shelf;
        to.slot = slot;
    }
    let found = control::discover(link, to, cli.wait)?;
    let mtu = link.mtu();
    let mut rows = Vec::new();
    for info in &found {
        let identity = control::identify(link, info.address(), retry).ok();
        rows.push((info, identity));
    }
    let mut text = String::new();
    if cli.json {
        let items: Vec<String> = rows
            .iter()
            .map(|(info, id)| {
                let spf = super::sectors_per_frame(mtu, info.sector_count).unwrap_or(0);
                info_json(info, id.as_ref(), spf)
            })
            .collect();
        let _ = writeln!(text, "[{}]", items.join(","));
    } else if rows.is_empty() {
        let _ = writeln!(
            text,
            "no AoE target answered on this interface within {:.1} s",
            cli.wait.as_secs_f64()
        );
    } else {
        let _ = writeln!(
            text,
            "{:<8} {:<17} {:>10} {:>12} {:>6} {:>4} {:>7}  config",
            "target", "mac", "size", "sectors", "bufcnt", "spf", "fw"
        );
        for (info, id) in &rows {
            let spf = super::sectors_per_frame(mtu, info.sector_count).unwrap_or(0);
            let (size, sectors) = match id {
                Some(id) => (size_text(id.sectors), id.sectors.to_string()),
                None => ("?".to_string(), "?".to_string()),
            };
            let _ = writeln!(
                text,
                "{:<8} {:<17} {:>10} {:>12} {:>6} {:>4} {:>#7x}  {:?}",
                format!("e{}.{}", info.shelf, info.slot),
                mac_text(info.mac),
                size,
                sectors,
                info.buffer_count,
                spf,
                info.firmware_version,
                String::from_utf8_lossy(&info.config_string)
            );
        }
    }
    out.write_all(text.as_bytes())?;
    if found.is_empty() && !cli.json {
        return Err(Error::NoAnswer {
            what: "discovery".to_string(),
            waited: cli.wait,
        });
    }
    Ok(())
}

fn show_identify(cli: &Cli, session: &Session) -> String {
    let id = &session.identity;
    if cli.json {
        return format!(
            "{}\n",
            info_json(&session.info, Some(id), session.sectors_per_frame)
        );
    }
    format!(
        "target    e{}.{} at {}\nsize      {} ({} sectors, LBA48 {})\nmodel     {}\n\
         serial    {}\nfirmware  {}\nflush     {}\nbufcnt    {}\nspf       {} on this port\n",
        session.info.shelf,
        session.info.slot,
        mac_text(session.info.mac),
        size_text(id.sectors),
        id.sectors,
        if id.lba48 { "yes" } else { "no" },
        id.model,
        id.serial,
        id.firmware,
        if id.flush_ext {
            "FLUSH CACHE EXT"
        } else if id.flush {
            "FLUSH CACHE (no EXT)"
        } else {
            "not advertised"
        },
        session.info.buffer_count,
        session.sectors_per_frame
    )
}

fn show_config(cli: &Cli, info: &TargetInfo) -> String {
    let string = String::from_utf8_lossy(&info.config_string);
    if cli.json {
        format!("{{\"config\":{}}}\n", json_string(&string))
    } else {
        format!("{string}\n")
    }
}

fn show_macs(cli: &Cli, what: &str, macs: &[EthernetAddress]) -> String {
    let list: Vec<String> = macs.iter().map(|m| mac_text(*m)).collect();
    if cli.json {
        let quoted: Vec<String> = list.iter().map(|m| json_string(m)).collect();
        format!("{{\"{what}\":[{}]}}\n", quoted.join(","))
    } else if list.is_empty() {
        format!("{what} list empty\n")
    } else {
        format!("{}\n", list.join("\n"))
    }
}

fn engine_for<L: Link + ?Sized>(cli: &Cli, link: &L, session: &Session) -> Result<Engine, Error> {
    let advertised = usize::from(session.info.buffer_count).clamp(1, MAX_WINDOW);
    let window = cli.window.unwrap_or(advertised);
    let mut config = EngineConfig::new(window, session.sectors_per_frame);
    config.give_up = cli.timeout;
    Engine::new(link.mac(), link.mtu(), session.address(), config)
}

/// The range `[lba, lba + count)`, checked against the target's capacity.
fn range(cli: &Cli, session: &Session, default_count: Option<u64>) -> Result<(u64, u64), Error> {
    let capacity = session.identity.sectors;
    if cli.lba >= capacity {
        return Err(Error::Invalid(format!(
            "--lba {} is beyond the target's {capacity} sectors",
            cli.lba
        )));
    }
    let count = cli.count.or(default_count).unwrap_or(capacity - cli.lba);
    if count == 0 || cli.lba.checked_add(count).is_none_or(|end| end > capacity) {
        return Err(Error::Invalid(format!(
            "sectors {}..{} do not fit the target's {capacity} sectors",
            cli.lba,
            cli.lba.saturating_add(count)
        )));
    }
    Ok((cli.lba, count))
}

/// Sectors moved per engine run when streaming a file: 8 MiB.
const CHUNK_SECTORS: u64 = 16 * 1024;

fn rate(sectors: u64, elapsed: Duration) -> String {
    #[allow(clippy::cast_precision_loss)]
    let mb = (sectors * 512) as f64 / 1e6;
    format!(
        "{} sectors ({:.1} MB) in {:.3} s, {:.1} MB/s",
        sectors,
        mb,
        elapsed.as_secs_f64(),
        mb / elapsed.as_secs_f64().max(1e-9)
    )
}

fn file_error(path: &std::path::Path, what: &str, err: &std::io::Error) -> Error {
    Error::Invalid(format!("{what} {}: {err}", path.display()))
}

fn read<L: Link + ?Sized>(
    cli: &Cli,
    link: &mut L,
    session: &Session,
    path: &std::path::Path,
) -> Result<String, Error> {
    let (lba, count) = range(cli, session, None)?;
    let mut engine = engine_for(cli, link, session)?;
    let mut file = std::fs::File::create(path).map_err(|e| file_error(path, "create", &e))?;
    let mut buf = vec![0u8; usize::try_from(CHUNK_SECTORS.min(count) * 512).unwrap_or(0)];
    let start = Instant::now();
    let mut done = 0;
    while done < count {
        let n = (count - done).min(CHUNK_SECTORS);
        let bytes = usize::try_from(n * 512).unwrap_or(0);
        let chunk = &mut buf[..bytes];
        engine.run(
            link,
            &mut Transfer::read(lba + done, chunk, engine.config().sectors_per_frame),
        )?;
        file.write_all(chunk)
            .map_err(|e| file_error(path, "write", &e))?;
        done += n;
    }
    file.sync_all().map_err(|e| file_error(path, "sync", &e))?;
    Ok(summary(cli, "read", &engine, count, start.elapsed(), ""))
}

/// One line on what a transfer moved; `json_extra` adds fields (`,"key":value...`) to the
/// JSON form.
fn summary(
    cli: &Cli,
    what: &str,
    engine: &Engine,
    sectors: u64,
    elapsed: Duration,
    json_extra: &str,
) -> String {
    let stats = engine.stats();
    if cli.json {
        format!(
            "{{\"op\":\"{what}\",\"sectors\":{sectors},\"seconds\":{:.6},\"frames\":{},\
             \"retransmits\":{}{json_extra}}}\n",
            elapsed.as_secs_f64(),
            stats.sent,
            stats.retransmits
        )
    } else {
        format!(
            "{what}: {}; {} frames, {} retransmitted\n",
            rate(sectors, elapsed),
            stats.sent,
            stats.retransmits
        )
    }
}

fn write<L: Link + ?Sized>(
    cli: &Cli,
    link: &mut L,
    session: &Session,
    path: &std::path::Path,
) -> Result<String, Error> {
    let mut file = std::fs::File::open(path).map_err(|e| file_error(path, "open", &e))?;
    let len = file
        .metadata()
        .map_err(|e| file_error(path, "stat", &e))?
        .len();
    if len == 0 {
        return Err(Error::Invalid(format!("{} is empty", path.display())));
    }
    let file_sectors = len.div_ceil(512);
    let (lba, count) = range(cli, session, Some(file_sectors))?;
    let mut engine = engine_for(cli, link, session)?;
    let mut buf = vec![0u8; usize::try_from(CHUNK_SECTORS.min(count) * 512).unwrap_or(0)];
    let start = Instant::now();
    let mut done = 0;
    while done < count {
        let n = (count - done).min(CHUNK_SECTORS);
        let chunk = &mut buf[..usize::try_from(n * 512).unwrap_or(0)];
        let filled = read_full(&mut file, chunk).map_err(|e| file_error(path, "read", &e))?;
        chunk[filled..].fill(0);
        engine.run(
            link,
            &mut Transfer::write(lba + done, chunk, engine.config().sectors_per_frame),
        )?;
        done += n;
    }
    flush(link, session, cli)?;
    Ok(summary(cli, "write", &engine, count, start.elapsed(), ""))
}

/// Flushes the target's write cache, saying on stderr when it cannot. It runs between I/O
/// runs, so it waits as long as a frame may (`--timeout`), not the short first-contact limit.
fn flush<L: Link + ?Sized>(link: &mut L, session: &Session, cli: &Cli) -> Result<(), Error> {
    let retry = Retry {
        rto: Duration::from_millis(250),
        give_up: cli.timeout,
    };
    if control::flush(link, session.address(), &session.identity, retry)?
        == control::Flushed::NotSupported
    {
        eprintln!("aoe: the target advertises no FLUSH CACHE command; writes were not flushed");
    }
    Ok(())
}

/// Reads until `buf` is full or the file ends; returns the octets read.
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

fn verify<L: Link + ?Sized>(cli: &Cli, link: &mut L, session: &Session) -> Result<String, Error> {
    let mut engine = engine_for(cli, link, session)?;
    let spf = engine.config().sectors_per_frame;
    let start = Instant::now();
    if let Some(path) = &cli.file {
        let mut file = std::fs::File::open(path).map_err(|e| file_error(path, "open", &e))?;
        let len = file
            .metadata()
            .map_err(|e| file_error(path, "stat", &e))?
            .len();
        let (lba, count) = range(cli, session, Some(len.div_ceil(512)))?;
        let bytes = usize::try_from(CHUNK_SECTORS.min(count) * 512).unwrap_or(0);
        let (mut from_target, mut from_file) = (vec![0u8; bytes], vec![0u8; bytes]);
        let mut done = 0;
        while done < count {
            let n = (count - done).min(CHUNK_SECTORS);
            let size = usize::try_from(n * 512).unwrap_or(0);
            let filled = read_full(&mut file, &mut from_file[..size])
                .map_err(|e| file_error(path, "read", &e))?;
            from_file[filled..size].fill(0);
            engine.run(
                link,
                &mut Transfer::read(lba + done, &mut from_target[..size], spf),
            )?;
            if let Some(k) = (0..size / 512)
                .find(|k| from_target[k * 512..(k + 1) * 512] != from_file[k * 512..(k + 1) * 512])
            {
                return Err(Error::Mismatch {
                    lba: lba + done + k as u64,
                });
            }
            done += n;
        }
        return Ok(summary(
            cli,
            "verify-file",
            &engine,
            count,
            start.elapsed(),
            ",\"ok\":true",
        ));
    }
    let (lba, count) = range(cli, session, None)?;
    let seed = cli.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| {
                u64::try_from(d.as_nanos() & u128::from(u64::MAX)).unwrap_or(1)
            })
    });
    engine.run(
        link,
        &mut PatternCheck::new(Op::Write, lba, count, seed, spf),
    )?;
    flush(link, session, cli)?;
    engine.run(
        link,
        &mut PatternCheck::new(Op::Read, lba, count, seed, spf),
    )?;
    let elapsed = start.elapsed();
    if cli.json {
        let extra = format!(",\"seed\":{seed},\"lba\":{lba},\"count\":{count},\"ok\":true");
        Ok(summary(cli, "verify", &engine, 2 * count, elapsed, &extra))
    } else {
        Ok(format!(
            "verify: wrote and read back sectors {lba}..{} with pattern seed {seed}: all match\n{}",
            lba + count,
            summary(cli, "verify", &engine, 2 * count, elapsed, "")
        ))
    }
}

fn bench<L: Link + ?Sized>(cli: &Cli, link: &mut L, session: &Session) -> Result<String, Error> {
    let mut engine = engine_for(cli, link, session)?;
    let spf = engine.config().sectors_per_frame;
    let default_bs = match cli.mode.access() {
        Access::Sequential => u64::from(spf) * 512,
        Access::Random => 4096,
    };
    let bs = cli.bs.unwrap_or(default_bs);
    let (lba, count) = range(cli, session, None)?;
    let spec = BenchSpec {
        op: cli.mode.op(),
        access: cli.mode.access(),
        request_sectors: u32::try_from(bs / 512).unwrap_or(u32::MAX),
        queue_depth: cli.qd,
        region_start: lba,
        region_sectors: count,
        duration: cli.seconds,
        max_requests: cli.requests,
        seed: cli.seed.unwrap_or(0x5eed),
    };
    let result = work::bench(&mut engine, link, spec)?;
    Ok(bench_text(
        cli,
        link.mtu(),
        spf,
        engine.config().window,
        bs,
        &result,
    ))
}

fn bench_text(cli: &Cli, mtu: usize, spf: u8, window: usize, bs: u64, r: &BenchResult) -> String {
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    if cli.json {
        return format!(
            "{{\"mode\":\"{}\",\"bs\":{bs},\"qd\":{},\"window\":{window},\"mtu\":{mtu},\
             \"sectors_per_frame\":{spf},\"seconds\":{:.6},\"requests\":{},\"bytes\":{},\
             \"mb_per_s\":{:.3},\"iops\":{:.1},\"p50_us\":{:.1},\"p99_us\":{:.1},\
             \"max_us\":{:.1},\"frames\":{},\"retransmits\":{},\"stale\":{}}}\n",
            cli.mode.name(),
            cli.qd,
            r.elapsed.as_secs_f64(),
            r.requests,
            r.bytes,
            r.mb_per_s,
            r.iops,
            micros(r.p50),
            micros(r.p99),
            micros(r.max),
            r.frames,
            r.retransmits,
            r.stale
        );
    }
    format!(
        "{} bs={} qd={} window={} mtu={} spf={}: {:.1} MB/s, {:.0} IOPS, p50 {:.0} us, p99 {:.0} \
         us, max {:.0} us; {} requests in {:.2} s, {} frames, {} retransmits\n",
        cli.mode.name(),
        bs,
        cli.qd,
        window,
        mtu,
        spf,
        r.mb_per_s,
        r.iops,
        micros(r.p50),
        micros(r.p99),
        micros(r.max),
        r.requests,
        r.elapsed.as_secs_f64(),
        r.frames,
        r.retransmits
    )
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::initiator::sim::{INITIATOR_MAC, SimLink};

    fn parse(args: &str) -> Result<Cli, Usage> {
        Cli::parse(args.split_whitespace().map(str::to_string))
    }

    #[test]
    fn parses_targets_macs_and_sizes() {
        assert_eq!(parse_target("7.1"), Ok((7, 1)));
        assert_eq!(parse_target("e65534.254"), Ok((65534, 254)));
        assert!(parse_target("7").is_err());
        assert!(parse_target("7.256").is_err());
        assert!(parse_target("65535.1").is_err());
        assert!(parse_target("7.255").is_err());
        let mac = EthernetAddress([0x02, 0, 0, 0, 0, 0xab]);
        assert_eq!(parse_mac("02:00:00:00:00:ab"), Ok(mac));
        assert_eq!(parse_mac("0200000000AB"), Ok(mac));
        assert!(parse_mac("02:00:00:00:00").is_err());
        assert!(parse_mac("02:00:00:00:00:zz").is_err());
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn parses_commands_and_refuses_bad_lines() {
        let cli = parse("bench -i veth0 -t 7.1 --mode rand-write --bs 4k --qd 64 --json").unwrap();
        assert_eq!(cli.command, Command::Bench);
        assert_eq!(cli.mode, BenchMode::RandWrite);
        assert_eq!((cli.bs, cli.qd, cli.json), (Some(4096), 64, true));
        assert_eq!(cli.link, Some(LinkSpec::packet("veth0")));
        let cli = parse("mask add 02:00:00:00:00:01 020000000002 -i x -t 1.2").unwrap();
        assert!(matches!(cli.command, Command::MaskEdit(ref e) if e.len() == 2));
        assert_eq!(
            parse("discover --tap tap0").unwrap().command,
            Command::Discover
        );
        assert_eq!(parse("").unwrap().command, Command::Help);
        assert_eq!(parse("read --help").unwrap().command, Command::Help);
        for bad in [
            "identify -t 1.1",
            "identify -i x",
            "frobnicate -i x -t 1.1",
            "read -i x -t 1.1",
            "bench -i x -t 1.1 --bs 1000",
            "bench -i x -t 1.1 --qd 0",
            "bench -i x -t 1.1 --mode sideways",
            "identify -i x -t 1.1 --bogus",
            "identify -i x -t 1.1 --timeout",
            "config -i x -t 1.1",
            "mask add -i x -t 1.1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    fn run_sim(link: &mut SimLink, args: &str) -> Result<String, Error> {
        let cli = parse(&format!("{args} -i sim")).unwrap();
        let mut out = Vec::new();
        run_on(&cli, link, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn commands_run_against_a_simulated_target() {
        let mut link = SimLink::new(7, 1, 4096, 16, 1500);
        let text = run_sim(&mut link, "discover --wait 0.2 --json").unwrap();
        assert!(
            text.contains("\"target\":\"e7.1\"") && text.contains("\"sectors\":4096"),
            "{text}"
        );
        let text = run_sim(&mut link, "identify -t 7.1").unwrap();
        assert!(text.contains("4096 sectors"), "{text}");
        let text = run_sim(&mut link, "identify -t 7.1 --json").unwrap();
        assert!(text.contains("\"sectors_per_frame\":2,"), "{text}");
        let text = run_sim(
            &mut link,
            "verify -t 7.1 --lba 8 --count 30 --seed 2 --json",
        )
        .unwrap();
        assert!(
            text.starts_with("{\"op\":\"verify\",\"sectors\":60,")
                && text.ends_with(",\"seed\":2,\"lba\":8,\"count\":30,\"ok\":true}\n"),
            "{text}"
        );
        run_sim(&mut link, "config set hello -t 7.1").unwrap();
        assert_eq!(run_sim(&mut link, "config get -t 7.1").unwrap(), "hello\n");
        let text = run_sim(&mut link, "reserve -t 7.1 --json").unwrap();
        assert_eq!(text, "{\"reserve\":[\"02:00:00:00:ae:02\"]}\n");
        assert_eq!(mac_text(INITIATOR_MAC), "02:00:00:00:ae:02");
        run_sim(&mut link, "release -t 7.1").unwrap();
        let text = run_sim(&mut link, "verify -t 7.1 --seed 5").unwrap();
        assert!(text.contains("all match"), "{text}");
        let text = run_sim(
            &mut link,
            "bench -t 7.1 --mode rand-read --requests 100 --json",
        )
        .unwrap();
        assert!(
            text.contains("\"requests\":100") && text.contains("\"retransmits\":0"),
            "{text}"
        );
        let err = run_sim(&mut link, "verify -t 7.1 --lba 4096").unwrap_err();
        assert!(err.to_string().contains("beyond"), "{err}");
        let err = run_sim(&mut link, "identify -t 7.2 --timeout 1").unwrap_err();
        assert!(matches!(err, Error::NoAnswer { .. }), "{err}");
    }
}
