//! The command line: vblade 25's, parsed the way glibc's `getopt("b:dsrm:o:l:")` does, plus a
//! few long options.
//!
//! ```text
//! host-sim [-b bufcnt] [-o offset] [-l length] [-d] [-s] [-r] [-m mac[,mac...]]
//!          [--tap NAME] [--log-level LEVEL] shelf slot netif filename
//! host-sim [--tap NAME] ... shelf slot filename        (TAP only)
//! host-sim --config FILE [--log-level LEVEL]
//! host-sim --help | --version
//! ```
//!
//! As with glibc, options may follow operands, short options cluster (`-dsr`, `-b16`,
//! `-rb 16`), and `--` ends the options. Hand-rolled rather than clap: clap does not
//! reproduce getopt's clustering and argument rules exactly, and this is short.
//!
//! Guarantee: [`parse`] never panics and refuses, with one line for a person, every argument
//! vblade would misread: numbers that are not numbers, shelf 65535/4095, slot 255, a buffer
//! count below 2, bad MACs.

use crate::spec::{self, DEFAULT_BUFFER_COUNT, ExportSpec, Ha, SpecError};
use aoe_net::LinkSpec;
use aoe_storage::file::DiskOptions;
use log::LevelFilter;
use std::path::PathBuf;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Serve exports.
    Run(Settings),
    /// Print the usage text.
    Help,
    /// Print the version.
    Version,
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
}

/// The usage text for `--help`.
pub const USAGE: &str = "\
usage: host-sim [-b bufcnt] [-o offset] [-l length] [-d] [-s] [-r] [-m mac[,mac...]]
                [--tap NAME] [--log-level LEVEL] shelf slot netif filename
       host-sim [options] --tap NAME shelf slot filename
       host-sim --config FILE [--log-level LEVEL]
       host-sim --help | --version

Export filename (a file or block device) as AoE target e<shelf>.<slot> on interface netif.
filename may also be a Ceph RBD image, rbd:POOL/IMAGE[@SNAP][:conf=PATH][:id=NAME][:keyring=PATH],
or an NBD export, nbd+unix:///EXPORT?socket=PATH or nbd://HOST[:PORT]/EXPORT.

  -b bufcnt   Buffer Count to advertise (frames queued without loss; default 64, at least 2)
  -o offset   skip offset 512-byte sectors at the start of the file
  -l length   export only length sectors (after the offset)
  -d          open with O_DIRECT (bypass the page cache)
  -s          open with O_SYNC (every write durable before it is acknowledged)
  -r          read-only export (writes fail with ATA ABRT)
  -m macs     answer only these initiator MACs (comma-separated, with or without colons)
  --tap NAME  also (or, without netif, only) export over TAP device NAME
  --ha rbd-lock  one of several gateways of an RBD image: answer only while holding its lock
  --config FILE      serve the exports listed in a TOML file; SIGHUP reloads it
  --log-level LEVEL  off, error, warn, info (default), debug or trace
  --help, --version

Shelf 65535 and 4095 and slot 255 are refused (the Linux initiator cannot use them).
Signals: SIGINT/SIGTERM finish in-flight requests, flush and exit 0; SIGHUP reloads --config;
SIGUSR1 logs the counters of every export.
";

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

fn parse_number<T: std::str::FromStr>(what: &str, text: &str, range: &str) -> Result<T, SpecError> {
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    match text.parse() {
        Ok(value) if digits_only => Ok(value),
        _ => Err(SpecError(format!(
            "{what} {text:?} is not a decimal number in {range}"
        ))),
    }
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
    ha: Option<String>,
    operands: Vec<String>,
    help: bool,
    version: bool,
}

const LONG_WITH_VALUE: [&str; 4] = ["tap", "config", "log-level", "ha"];

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
    if raw.version {
        return Ok(Command::Version);
    }
    let log_level = raw.log_level.as_deref().map(parse_level).transpose()?;
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
        return Ok(Command::Run(Settings {
            exports: Exports::ConfigFile(PathBuf::from(config)),
            log_level,
        }));
    }
    let export = single_export(raw)?;
    Ok(Command::Run(Settings {
        exports: Exports::Single(export),
        log_level,
    }))
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
                ("version", _) => raw.version = true,
                ("tap", value) => raw.tap = value,
                ("config", value) => raw.config = value,
                ("log-level", value) => raw.log_level = value,
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
        disk.offset = parse_number("offset (-o)", text, "sectors")?;
    }
    if let Some(text) = &raw.length {
        disk.length = Some(parse_number("length (-l)", text, "sectors")?);
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
            Ok(Command::Run(Settings {
                exports: Exports::Single(spec),
                ..
            })) => spec,
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
    fn long_options() {
        assert_eq!(parse(["--help"]), Ok(Command::Help));
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
                "shelf \"65536\" is not a decimal number",
            ),
            (&["-1", "0", "e", "f"], "invalid option -1"),
            (&["1", "255", "e", "f"], "broadcast slot"),
            (&["1", "256", "e", "f"], "slot \"256\""),
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
