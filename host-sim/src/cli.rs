//! The command line: vblade 25's, parsed the way glibc's `getopt("b:dsrm:o:l:")` does, plus a
//! few long options.
//!
//! ```text
//! host-sim [-b bufcnt] [-o offset] [-l length] [-d] [-s] [-r] [-m mac[,mac...]]
//!          [--writeback] [--tap NAME] [daemon options] shelf slot netif filename
//! host-sim [--tap NAME] ... shelf slot filename        (TAP only)
//! host-sim --config FILE [daemon options]
//! host-sim --check-config FILE
//! host-sim stats [--control PATH] [--prometheus]
//! host-sim --help | --help-man | --version
//! ```
//!
//! As with glibc, options may follow operands, short options cluster (`-dsr`, `-b16`,
//! `-rb 16`), and `--` ends the options. Hand-rolled rather than clap: clap does not
//! reproduce getopt's clustering and argument rules exactly, and this is short.
//!
//! Guarantee: [`parse`] never panics and refuses, with one line for a person, every argument
//! vblade would misread: numbers that are not numbers, shelf 65535/4095, slot 255, a buffer
//! count below 2, bad MACs.

use crate::spec::{
    self, DEFAULT_BUFFER_COUNT, ExportSpec, Ha, NetOptions, SpecError, StatePresets,
};
use aoe_net::LinkSpec;
use aoe_storage::file::DiskOptions;
use log::LevelFilter;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where `host-sim stats` asks, and where the packaged service listens.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/vblade-rs/control.sock";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Serve exports.
    Run(Box<Settings>),
    /// Check a config file and exit.
    CheckConfig(PathBuf),
    /// Print a running host-sim's counters.
    Stats {
        /// Its control socket.
        control: PathBuf,
        /// As Prometheus text instead of a table.
        prometheus: bool,
    },
    /// Print the usage text.
    Help,
    /// Print the man page (made from the usage text).
    ManPage,
    /// Print the version.
    Version,
}

/// How the daemon runs, from the command line (each also a config file key; the command line
/// wins).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DaemonOptions {
    /// `--state-dir`.
    pub state_dir: Option<PathBuf>,
    /// `--metrics`.
    pub metrics: Option<SocketAddr>,
    /// `--control`.
    pub control: Option<PathBuf>,
    /// `--allow-duplicate`.
    pub allow_duplicate: bool,
    /// `--wait-link`.
    pub wait_link: Option<Duration>,
}

/// Where the exports come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exports {
    /// One export from the vblade-style operands.
    Single(ExportSpec),
    /// A TOML config file (reloaded on SIGHUP).
    ConfigFile(PathBuf),
}

/// A parsed `Run` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The exports.
    pub exports: Exports,
    /// `--log-level`, if given (else the config file's, else `info`).
    pub log_level: Option<LevelFilter>,
    /// The daemon's options.
    pub daemon: DaemonOptions,
    /// `--link`, `--workers`, `--busy-poll`, where given (they win over the config file's).
    pub net: NetOptions,
}

/// The usage text for `--help` (and, through `aoe-manpage`, the man page).
pub const USAGE: &str = "\
usage: host-sim [-b bufcnt] [-o offset] [-l length] [-d] [-s] [-r] [-m mac[,mac...]]
                [--writeback] [--tap NAME] [daemon options] shelf slot netif filename
       host-sim [options] --tap NAME shelf slot filename
       host-sim --config FILE [daemon options]
       host-sim --check-config FILE
       host-sim stats [--control PATH] [--prometheus]
       host-sim --help | --help-man | --version

Export filename (a file or block device) as ATA over Ethernet target e<shelf>.<slot> on
interface netif, as vblade does; or serve every export of a TOML config file. filename may
also be a Ceph RBD image, rbd:POOL/IMAGE[@SNAP][:conf=PATH][:id=NAME][:keyring=PATH], or an
NBD export, nbd+unix:///EXPORT?socket=PATH or nbd://HOST[:PORT]/EXPORT.

export options (vblade's):
  -b bufcnt   Buffer Count to advertise (frames queued without loss; default 64, at least 2)
  -o offset   skip offset 512-byte sectors at the start of the file (decimal, 0x hex, 0 octal)
  -l length   export only length sectors (after the offset)
  -d          open with O_DIRECT (bypass the page cache)
  -s          open with O_SYNC (every write durable before it is acknowledged)
  -r          read-only export (writes fail with ATA ABRT)
  -m macs     answer only these initiator MACs (comma-separated, with or without colons)
  --writeback acknowledge writes from the page cache, as vblade does: faster, but a power cut
              or crash of this host loses acknowledged writes (default: every write is on
              stable storage before it is acknowledged; the Linux initiator never flushes)
  --tap NAME  also (or, without netif, only) export over TAP device NAME
  --ha rbd-lock
              one of several failover gateways of an RBD image: answer only while
              holding its lock

daemon options:
  --config FILE        serve the exports listed in a TOML file; SIGHUP reloads it
  --state-dir DIR      keep each export's config string, MAC mask and reserve list in DIR:
                       saved before the reply that acknowledges a change, restored at start
  --metrics ADDRESS    serve Prometheus metrics on http://ADDRESS/metrics (e.g. 127.0.0.1:9188)
  --control PATH       listen on unix socket PATH for host-sim stats
  --wait-link SECONDS  wait at most this long at start for a missing or down interface, then
                       refuse (0: refuse at once); without it, wait as long as it takes
  --allow-duplicate    serve even when another target answers the same shelf.slot
  --link KIND          auto (default: AF_XDP where the kernel and interface allow, else the
                       PACKET_MMAP ring, else a plain packet socket), xdp, ring or socket
  --workers N          threads (each with its own socket, ring or AF_XDP queue) per interface
                       [1]; each initiator's frames always go to the same one
  --busy-poll USEC     spin up to USEC microseconds on the link before sleeping [0: never];
                       lower latency at queue depth 1 for a busy core
  --log-level LEVEL    off, error, warn, info (default), debug or trace

other commands:
  --check-config FILE  check a config file (syntax, exports, files, overlaps, state) and exit
  stats                print the counters of a running host-sim, from its --control socket
                       (default /run/vblade-rs/control.sock); --prometheus: as metrics text
  --help-man           print this text as a man page
  --help, --version

Shelf 65535 and 4095 and slot 255 are refused (the Linux initiator cannot use them).
Guards: a file exported writable is locked (and a block device opened O_EXCL) for as long as
it is served, and refused if another program exports it or has it open for writing; one
config may export a file twice only read-only or in disjoint windows; a shelf.slot answered by
another target on the LAN (a probe at start and whenever a link comes up) or served by another
host-sim on this host and interface is refused unless --allow-duplicate.
Signals: SIGINT/SIGTERM finish in-flight requests, flush and exit 0; SIGHUP reloads --config,
keeping each export's target state unless its shelf.slot or file changed; SIGUSR1 logs the
counters of every export.
";

/// The man page `--help-man` prints: [`USAGE`] in roff (`aoe-manpage`), so the two cannot
/// drift.
pub fn man_page() -> String {
    let source = format!("vblade-rs {}", env!("CARGO_PKG_VERSION"));
    aoe_manpage::render(
        &aoe_manpage::Page {
            name: "host-sim",
            section: "8",
            summary: "vblade-compatible ATA over Ethernet target",
            source: &source,
            manual: "System Administration",
        },
        USAGE,
    )
}

/// Reads a metrics address: `IP:PORT`.
///
/// # Errors
/// When it is not one.
pub fn parse_address(text: &str) -> Result<SocketAddr, SpecError> {
    text.parse().map_err(|_| {
        SpecError(format!(
            "metrics address {text:?} is not IP:PORT (e.g. 127.0.0.1:9188)"
        ))
    })
}

/// Parses a log level name.
///
/// # Errors
/// For anything but off, error, warn, info, debug, trace (any case).
pub fn parse_level(text: &str) -> Result<LevelFilter, SpecError> {
    text.parse().map_err(|_| {
        SpecError(format!(
            "log level {text:?} is not one of off, error, warn, info, debug, trace"
        ))
    })
}

/// A decimal number as vblade's `atoi` reads shelf, slot and `-b` (leading zeros are still
/// decimal), refusing what `atoi` would silently turn into something else: signs, hex, trailing
/// letters. A number too large for the field is reported as out of range, not as "not a
/// number".
fn parse_number<T: std::str::FromStr>(what: &str, text: &str, range: &str) -> Result<T, SpecError> {
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits_only {
        return Err(SpecError(format!(
            "{what} {text:?} is not a decimal number in {range}"
        )));
    }
    text.parse().map_err(|_| {
        SpecError(format!(
            "{what} {text:?} is out of range (overflow): use {range}"
        ))
    })
}

/// A sector count as vblade's `strtoll(text, NULL, 0)` reads `-o` and `-l`: decimal, `0x`
/// hexadecimal or leading-`0` octal. Unlike `strtoll`, trailing characters (`16k`, `1e2`) and
/// signs are refused rather than ignored, and a value beyond 2^64 − 1 is reported as an overflow.
fn parse_sectors(what: &str, text: &str) -> Result<u64, SpecError> {
    let (digits, radix, kind) =
        if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            (hex, 16, "hexadecimal")
        } else if text.len() > 1 && text.starts_with('0') {
            (&text[1..], 8, "octal")
        } else {
            (text, 10, "decimal")
        };
    let valid = !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix));
    if !valid {
        return Err(SpecError(format!(
            "{what} {text:?} is not a number of sectors (decimal, 0x hexadecimal or 0 octal)"
        )));
    }
    u64::from_str_radix(digits, radix).map_err(|_| {
        SpecError(format!(
            "{what} {text:?} is out of range ({kind} overflow): at most {} sectors",
            u64::MAX
        ))
    })
}

/// What the getopt-style scan collected before operands are interpreted.
#[derive(Default)]
struct Raw {
    buffer_count: Option<String>,
    offset: Option<String>,
    length: Option<String>,
    macs: Vec<String>,
    disk: DiskOptions,
    tap: Option<String>,
    config: Option<String>,
    log_level: Option<String>,
    check_config: Option<String>,
    state_dir: Option<String>,
    metrics: Option<String>,
    control: Option<String>,
    wait_link: Option<String>,
    allow_duplicate: bool,
    prometheus: bool,
    link: Option<String>,
    workers: Option<String>,
    busy_poll: Option<String>,
    ha: Option<String>,
    operands: Vec<String>,
    help: bool,
    help_man: bool,
    version: bool,
}

const LONG_WITH_VALUE: [&str; 12] = [
    "tap",
    "config",
    "log-level",
    "check-config",
    "state-dir",
    "metrics",
    "control",
    "wait-link",
    "link",
    "workers",
    "busy-poll",
    "ha",
];

/// Parses `args` (without the program name).
///
/// # Errors
/// One line saying what is wrong.
pub fn parse<I, S>(args: I) -> Result<Command, SpecError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let args: Vec<String> = args.into_iter().map(Into::into).collect();
    let raw = scan(&args)?;
    if raw.help {
        return Ok(Command::Help);
    }
    if raw.help_man {
        return Ok(Command::ManPage);
    }
    if raw.version {
        return Ok(Command::Version);
    }
    if raw.operands.first().is_some_and(|word| word == "stats") {
        if raw.operands.len() > 1 {
            return Err(SpecError(format!(
                "unexpected argument {:?} after stats (see --help)",
                raw.operands[1]
            )));
        }
        return Ok(Command::Stats {
            control: PathBuf::from(raw.control.as_deref().unwrap_or(DEFAULT_CONTROL_SOCKET)),
            prometheus: raw.prometheus,
        });
    }
    if raw.prometheus {
        return Err(SpecError(
            "--prometheus goes with stats (see --help)".into(),
        ));
    }
    if let Some(file) = &raw.check_config {
        if !raw.operands.is_empty() || raw.config.is_some() {
            return Err(SpecError(
                "--check-config takes only the file to check (see --help)".into(),
            ));
        }
        return Ok(Command::CheckConfig(PathBuf::from(file)));
    }
    let log_level = raw.log_level.as_deref().map(parse_level).transpose()?;
    let daemon = DaemonOptions {
        state_dir: raw.state_dir.as_deref().map(PathBuf::from),
        metrics: raw.metrics.as_deref().map(parse_address).transpose()?,
        control: raw.control.as_deref().map(PathBuf::from),
        allow_duplicate: raw.allow_duplicate,
        wait_link: match raw.wait_link.as_deref() {
            Some(text) => Some(Duration::from_secs(parse_number(
                "--wait-link",
                text,
                "0..4294967295 seconds",
            )?)),
            None => None,
        },
    };
    let net = NetOptions {
        link: raw
            .link
            .as_deref()
            .map(|text| text.parse().map_err(SpecError))
            .transpose()?,
        workers: raw
            .workers
            .as_deref()
            .map(|text| parse_number("--workers", text, "1..64"))
            .transpose()?,
        busy_poll_us: raw
            .busy_poll
            .as_deref()
            .map(|text| parse_number("--busy-poll", text, "microseconds"))
            .transpose()?,
    };
    net.validate()?;
    if let Some(config) = &raw.config {
        let vblade_flags = raw.buffer_count.is_some()
            || raw.offset.is_some()
            || raw.length.is_some()
            || !raw.macs.is_empty()
            || raw.disk != DiskOptions::default()
            || raw.tap.is_some()
            || raw.ha.is_some();
        if !raw.operands.is_empty() || vblade_flags {
            return Err(SpecError(
                "--config takes the exports from the file; give no shelf, slot, netif, filename or export options with it"
                    .into(),
            ));
        }
        return Ok(Command::Run(Box::new(Settings {
            exports: Exports::ConfigFile(PathBuf::from(config)),
            log_level,
            daemon,
            net,
        })));
    }
    let export = single_export(raw)?;
    Ok(Command::Run(Box::new(Settings {
        exports: Exports::Single(export),
        log_level,
        daemon,
        net,
    })))
}

fn scan(args: &[String]) -> Result<Raw, SpecError> {
    let mut raw = Raw::default();
    let mut index = 0;
    let mut only_operands = false;
    while index < args.len() {
        let arg = &args[index];
        index += 1;
        if only_operands || arg == "-" || !arg.starts_with('-') {
            raw.operands.push(arg.clone());
            continue;
        }
        if arg == "--" {
            only_operands = true;
            continue;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (long, None),
            };
            let value = if LONG_WITH_VALUE.contains(&name) {
                match inline {
                    Some(value) => Some(value),
                    None if index < args.len() => {
                        index += 1;
                        Some(args[index - 1].clone())
                    }
                    None => {
                        return Err(SpecError(format!("option --{name} requires an argument")));
                    }
                }
            } else if inline.is_some() {
                return Err(SpecError(format!("option --{name} takes no argument")));
            } else {
                None
            };
            match (name, value) {
                ("help", _) => raw.help = true,
                ("writeback", _) => raw.disk.writeback = true,
                ("help-man", _) => raw.help_man = true,
                ("version", _) => raw.version = true,
                ("allow-duplicate", _) => raw.allow_duplicate = true,
                ("prometheus", _) => raw.prometheus = true,
                ("tap", value) => raw.tap = value,
                ("config", value) => raw.config = value,
                ("log-level", value) => raw.log_level = value,
                ("check-config", value) => raw.check_config = value,
                ("state-dir", value) => raw.state_dir = value,
                ("metrics", value) => raw.metrics = value,
                ("control", value) => raw.control = value,
                ("wait-link", value) => raw.wait_link = value,
                ("link", value) => raw.link = value,
                ("workers", value) => raw.workers = value,
                ("busy-poll", value) => raw.busy_poll = value,
                ("ha", value) => raw.ha = value,
                _ => {
                    return Err(SpecError(format!(
                        "unrecognized option --{name} (see --help)"
                    )));
                }
            }
            continue;
        }
        // A cluster of short options: flags, then at most one that takes an argument, either
        // the rest of the cluster or the next word.
        let cluster: Vec<char> = arg[1..].chars().collect();
        let mut at = 0;
        while at < cluster.len() {
            let option = cluster[at];
            at += 1;
            match option {
                'd' => raw.disk.direct = true,
                's' => raw.disk.sync = true,
                'r' => raw.disk.read_only = true,
                'b' | 'o' | 'l' | 'm' => {
                    let value = if at < cluster.len() {
                        let rest: String = cluster[at..].iter().collect();
                        at = cluster.len();
                        rest
                    } else if index < args.len() {
                        index += 1;
                        args[index - 1].clone()
                    } else {
                        return Err(SpecError(format!("option -{option} requires an argument")));
                    };
                    match option {
                        'b' => raw.buffer_count = Some(value),
                        'o' => raw.offset = Some(value),
                        'l' => raw.length = Some(value),
                        _ => raw.macs.push(value),
                    }
                }
                other => return Err(SpecError(format!("invalid option -{other} (see --help)"))),
            }
        }
    }
    Ok(raw)
}

fn single_export(raw: Raw) -> Result<ExportSpec, SpecError> {
    let (shelf, slot, netif, file) = match (raw.operands.as_slice(), &raw.tap) {
        ([shelf, slot, netif, file], _) => (shelf, slot, Some(netif), file),
        ([shelf, slot, file], Some(_)) => (shelf, slot, None, file),
        (operands, tap) => {
            let wanted = if tap.is_some() { "3 or 4" } else { "4" };
            return Err(SpecError(format!(
                "expected {wanted} operands (shelf slot netif filename), got {} (see --help)",
                operands.len()
            )));
        }
    };
    let shelf: u16 = parse_number("shelf", shelf, "0..65534")?;
    spec::check_shelf(shelf)?;
    let slot: u8 = parse_number("slot", slot, "0..254")?;
    spec::check_slot(slot)?;
    let buffer_count = match &raw.buffer_count {
        Some(text) => parse_number("buffer count (-b)", text, "2..65535")?,
        None => DEFAULT_BUFFER_COUNT,
    };
    let mut disk = raw.disk;
    if let Some(text) = &raw.offset {
        disk.offset = parse_sectors("offset (-o)", text)?;
    }
    if let Some(text) = &raw.length {
        disk.length = Some(parse_sectors("length (-l)", text)?);
    }
    let mut mac_mask = Vec::new();
    for list in &raw.macs {
        for text in list.split(',') {
            mac_mask.push(spec::parse_initiator_mac(text)?);
        }
    }
    let mut links = Vec::new();
    if let Some(netif) = netif {
        links.push(LinkSpec::packet(netif));
    }
    if let Some(tap) = &raw.tap {
        links.push(LinkSpec::tap(tap));
    }
    let export = ExportSpec {
        shelf,
        slot,
        links,
        file: PathBuf::from(file),
        buffer_count,
        disk,
        mac_mask,
        state: StatePresets::default(),
        ha: raw
            .ha
            .as_deref()
            .map(Ha::parse)
            .transpose()?
            .unwrap_or_default(),
    };
    export.validate()?;
    Ok(export)
}

#[cfg(test)]
mod test {
    use super::*;
    use aoe_net::EthernetAddress;

    fn run(args: &[&str]) -> ExportSpec {
        match parse(args.iter().copied()) {
            Ok(Command::Run(settings)) => match settings.exports {
                Exports::Single(spec) => spec,
                other => panic!("{args:?}: {other:?}"),
            },
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn refused(args: &[&str]) -> String {
        match parse(args.iter().copied()) {
            Err(error) => error.0,
            Ok(other) => panic!("{args:?} accepted: {other:?}"),
        }
    }

    #[test]
    fn network_storage_and_ha_parse_from_the_command_line() {
        let spec = run(&["--ha", "rbd-lock", "1", "0", "eth1", "rbd:rbd/img:id=aoe"]);
        assert_eq!(spec.ha, Ha::RbdLock);
        assert_eq!(spec.file, PathBuf::from("rbd:rbd/img:id=aoe"));
        let spec = run(&["-r", "1", "0", "eth1", "nbd+unix:///x?socket=/s"]);
        assert_eq!(spec.ha, Ha::None);
        assert!(refused(&["--ha", "rbd-lock", "1", "0", "eth1", "/srv/disk"]).contains("rbd-lock"));
        assert!(refused(&["--ha", "carp", "1", "0", "eth1", "rbd:a/b"]).contains("carp"));
        assert!(refused(&["-d", "1", "0", "eth1", "rbd:a/b"]).contains("apply to files"));
        assert!(refused(&["1", "0", "eth1", "rbd:a"]).contains("POOL/IMAGE"));
        assert!(refused(&["--config", "c.toml", "--ha", "rbd-lock"]).contains("--config"));
    }

    #[test]
    fn vblade_command_lines_parse() {
        let spec = run(&["1", "0", "eth1", "/dev/sdb"]);
        assert_eq!((spec.shelf, spec.slot), (1, 0));
        assert_eq!(spec.links, vec![LinkSpec::packet("eth1")]);
        assert_eq!(spec.file, PathBuf::from("/dev/sdb"));
        assert_eq!(spec.buffer_count, DEFAULT_BUFFER_COUNT);
        assert_eq!(spec.disk, DiskOptions::default());

        let spec = run(&[
            "-b",
            "32",
            "-o",
            "8",
            "-l",
            "100",
            "-d",
            "-s",
            "-r",
            "-m",
            "00:11:22:33:44:55,66778899aabb",
            "7",
            "3",
            "eth2",
            "disk.img",
        ]);
        assert_eq!(spec.buffer_count, 32);
        assert_eq!(
            spec.disk,
            DiskOptions {
                direct: true,
                sync: true,
                writeback: false,
                read_only: true,
                offset: 8,
                length: Some(100)
            }
        );
        assert_eq!(
            spec.mac_mask,
            vec![
                EthernetAddress([0, 0x11, 0x22, 0x33, 0x44, 0x55]),
                EthernetAddress([0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb])
            ]
        );
    }

    #[test]
    fn getopt_clustering_permutation_and_double_dash() {
        // Clustered flags, attached argument, an option after the operands (glibc permutes).
        let spec = run(&["-dsr", "-b16", "1", "2", "eth0x", "f", "-o4"]);
        assert!(spec.disk.direct && spec.disk.sync && spec.disk.read_only);
        assert_eq!((spec.buffer_count, spec.disk.offset), (16, 4));
        // An argument-taking option at the end of a cluster takes the next word.
        let spec = run(&["-rb", "8", "1", "2", "eth0x", "f"]);
        assert!(spec.disk.read_only);
        assert_eq!(spec.buffer_count, 8);
        // After "--", a leading dash is a file name.
        let spec = run(&["1", "2", "eth0x", "--", "-disk-"]);
        assert_eq!(spec.file, PathBuf::from("-disk-"));
        // Repeated -m accumulate.
        let spec = run(&[
            "-m",
            "020000000001",
            "-m",
            "020000000002",
            "1",
            "2",
            "e",
            "f",
        ]);
        assert_eq!(spec.mac_mask.len(), 2);
    }

    #[test]
    fn offsets_and_lengths_read_hex_and_octal_as_vblade_does() {
        // vblade reads -o and -l with strtoll(.., 0): 0x10 is 16, 010 is 8.
        let spec = run(&["-o", "0x10", "-l", "010", "1", "2", "e", "f"]);
        assert_eq!((spec.disk.offset, spec.disk.length), (16, Some(8)));
        let spec = run(&["-o0X1f", "-l", "0", "1", "2", "e", "f"]);
        assert_eq!((spec.disk.offset, spec.disk.length), (31, Some(0)));
        let spec = run(&["-o", "18446744073709551615", "1", "2", "e", "f"]);
        assert_eq!(spec.disk.offset, u64::MAX);
        // Shelf, slot and -b are atoi's: decimal, also with a leading zero (vblade: 010 is 10).
        let spec = run(&["-b", "010", "010", "02", "e", "f"]);
        assert_eq!((spec.buffer_count, spec.shelf, spec.slot), (10, 10, 2));
    }

    #[test]
    fn long_options() {
        assert_eq!(parse(["--help"]), Ok(Command::Help));
        let spec = run(&["--writeback", "-s", "1", "2", "eth1", "f"]);
        assert!(spec.disk.writeback && spec.disk.sync);
        assert!(
            !run(&["1", "2", "eth1", "f"]).disk.writeback,
            "durable by default"
        );
        assert_eq!(parse(["1", "--version"]), Ok(Command::Version));
        let spec = run(&["--tap", "tap0", "1", "2", "f"]);
        assert_eq!(spec.links, vec![LinkSpec::tap("tap0")]);
        let spec = run(&["--tap=tap0", "1", "2", "eth1", "f"]);
        assert_eq!(
            spec.links,
            vec![LinkSpec::packet("eth1"), LinkSpec::tap("tap0")]
        );
        match parse(["--config", "/etc/host-sim.toml", "--log-level=debug"]) {
            Ok(Command::Run(settings)) => {
                assert_eq!(
                    settings.exports,
                    Exports::ConfigFile("/etc/host-sim.toml".into())
                );
                assert_eq!(settings.log_level, Some(LevelFilter::Debug));
                assert_eq!(settings.daemon, DaemonOptions::default());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn daemon_options_and_other_commands() {
        match parse([
            "--config",
            "c.toml",
            "--state-dir",
            "/var/lib/vblade-rs",
            "--metrics=127.0.0.1:9188",
            "--control",
            "/run/x.sock",
            "--allow-duplicate",
            "--wait-link=30",
        ]) {
            Ok(Command::Run(settings)) => assert_eq!(
                settings.daemon,
                DaemonOptions {
                    state_dir: Some("/var/lib/vblade-rs".into()),
                    metrics: Some("127.0.0.1:9188".parse().unwrap()),
                    control: Some("/run/x.sock".into()),
                    allow_duplicate: true,
                    wait_link: Some(Duration::from_secs(30)),
                }
            ),
            other => panic!("{other:?}"),
        }
        // With a vblade command line too (the vblade@ template adds them).
        match parse([
            "--state-dir",
            "/s",
            "--wait-link",
            "0",
            "1",
            "2",
            "eth1",
            "f",
        ]) {
            Ok(Command::Run(settings)) => {
                assert_eq!(settings.daemon.state_dir, Some("/s".into()));
                assert_eq!(settings.daemon.wait_link, Some(Duration::ZERO));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse(["--check-config", "/etc/vblade-rs/exports.toml"]),
            Ok(Command::CheckConfig("/etc/vblade-rs/exports.toml".into()))
        );
        assert_eq!(
            parse(["stats"]),
            Ok(Command::Stats {
                control: DEFAULT_CONTROL_SOCKET.into(),
                prometheus: false
            })
        );
        assert_eq!(
            parse(["stats", "--control=/tmp/c.sock", "--prometheus"]),
            Ok(Command::Stats {
                control: "/tmp/c.sock".into(),
                prometheus: true
            })
        );
        assert_eq!(parse(["--help-man"]), Ok(Command::ManPage));
    }

    #[test]
    fn the_man_page_says_what_the_help_says() {
        aoe_manpage::check_page(USAGE, &man_page()).unwrap();
        assert!(man_page().contains(".B \\-\\-state\\-dir DIR\n"));
    }

    #[test]
    fn link_workers_and_busy_poll_options() {
        let parsed = parse([
            "--link=ring",
            "--workers",
            "2",
            "--busy-poll",
            "50",
            "1",
            "2",
            "eth1",
            "f",
        ]);
        match parsed {
            Ok(Command::Run(settings)) => assert_eq!(
                settings.net,
                NetOptions {
                    link: Some(aoe_net::LinkKind::Ring),
                    workers: Some(2),
                    busy_poll_us: Some(50)
                }
            ),
            other => panic!("{other:?}"),
        }
        // They also go with --config (and win over the file's).
        match parse(["--config", "c.toml", "--link", "xdp"]) {
            Ok(Command::Run(settings)) => {
                assert_eq!(settings.net.link, Some(aoe_net::LinkKind::Xdp));
                assert_eq!(settings.net.workers, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_refusal_says_why() {
        let cases: &[(&[&str], &str)] = &[
            (&["65535", "0", "e", "f"], "broadcast shelf"),
            (&["4095", "0", "e", "f"], "refused by the Linux initiator"),
            (
                &["65536", "0", "e", "f"],
                "shelf \"65536\" is out of range (overflow)",
            ),
            (
                &["0x3", "0", "e", "f"],
                "shelf \"0x3\" is not a decimal number",
            ),
            (&["-1", "0", "e", "f"], "invalid option -1"),
            (&["1", "255", "e", "f"], "broadcast slot"),
            (&["1", "256", "e", "f"], "slot \"256\" is out of range"),
            (&["1", "x", "e", "f"], "slot \"x\""),
            (&["1", "+2", "e", "f"], "slot \"+2\""),
            (&["-b", "1", "1", "2", "e", "f"], "below 2"),
            (&["-b", "0", "1", "2", "e", "f"], "below 2"),
            (
                &["-b", "ten", "1", "2", "e", "f"],
                "buffer count (-b) \"ten\"",
            ),
            (&["-o", "-3", "1", "2", "e", "f"], "offset (-o) \"-3\""),
            (&["-l", "1k", "1", "2", "e", "f"], "length (-l) \"1k\""),
            (
                &["-o", "16k", "1", "2", "e", "f"],
                "offset (-o) \"16k\" is not a number",
            ),
            (
                &["-o", "0x", "1", "2", "e", "f"],
                "offset (-o) \"0x\" is not a number",
            ),
            (
                &["-o", "09", "1", "2", "e", "f"],
                "offset (-o) \"09\" is not a number",
            ),
            (
                &["-l", "99999999999999999999", "1", "2", "e", "f"],
                "length (-l) \"99999999999999999999\" is out of range (decimal overflow)",
            ),
            (
                &["-o", "0x10000000000000000", "1", "2", "e", "f"],
                "hexadecimal overflow",
            ),
            (
                &["-b", "70000", "1", "2", "e", "f"],
                "is out of range (overflow)",
            ),
            (&["-m", "00:11:22", "1", "2", "e", "f"], "not a MAC address"),
            (
                &["-m", "01:00:5e:00:00:01", "1", "2", "e", "f"],
                "multicast",
            ),
            (
                &["-m", "020000000001,", "1", "2", "e", "f"],
                "\"\" is not a MAC",
            ),
            (&["1", "2", "e"], "expected 4 operands"),
            (&["1", "2", "e", "f", "g"], "expected 4 operands"),
            (&["--tap", "t", "1", "2"], "expected 3 or 4 operands"),
            (&["-x", "1", "2", "e", "f"], "invalid option -x"),
            (
                &["1", "2", "e", "f", "-b"],
                "option -b requires an argument",
            ),
            (&["--frobnicate"], "unrecognized option --frobnicate"),
            (
                &["--link", "dpdk", "1", "2", "e", "f"],
                "link \"dpdk\" is not one of auto, xdp, ring, socket",
            ),
            (
                &["--workers", "0", "1", "2", "e", "f"],
                "0 workers per link",
            ),
            (
                &["--workers", "65", "1", "2", "e", "f"],
                "65 workers per link",
            ),
            (
                &["--busy-poll", "-5", "1", "2", "e", "f"],
                "--busy-poll \"-5\"",
            ),
            (&["--help=yes"], "takes no argument"),
            (&["--tap"], "option --tap requires an argument"),
            (
                &["--log-level", "loud", "1", "2", "e", "f"],
                "log level \"loud\"",
            ),
            (
                &["--config", "c.toml", "1", "2", "e", "f"],
                "--config takes the exports from the file",
            ),
            (
                &["--config", "c.toml", "-r"],
                "--config takes the exports from the file",
            ),
            (
                &["--config", "c.toml", "--writeback"],
                "--config takes the exports from the file",
            ),
            (
                &["--writeback=yes", "1", "2", "e", "f"],
                "takes no argument",
            ),
            (
                &["--metrics", "localhost", "--config", "c"],
                "metrics address \"localhost\" is not IP:PORT",
            ),
            (
                &["--wait-link", "-1", "--config", "c"],
                "--wait-link \"-1\" is not a decimal number",
            ),
            (&["stats", "now"], "unexpected argument \"now\" after stats"),
            (
                &["--prometheus", "1", "2", "e", "f"],
                "--prometheus goes with stats",
            ),
            (
                &["--check-config", "c", "1", "2", "e", "f"],
                "--check-config takes only the file",
            ),
        ];
        for (args, expected) in cases {
            let message = refused(args);
            assert!(
                message.contains(expected),
                "{args:?}: {message:?} lacks {expected:?}"
            );
            assert!(!message.contains('\n'), "one line: {message:?}");
        }
        let too_many: Vec<String> = (1..=33).map(|i| format!("0200000000{i:02x}")).collect();
        let message = refused(&["-m", &too_many.join(","), "1", "2", "e", "f"]);
        assert!(message.contains("at most 32"), "{message}");
    }
}
