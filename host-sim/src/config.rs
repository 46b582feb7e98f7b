//! The TOML config file: many exports in one process, reloaded on SIGHUP.
//!
//! ```toml
//! log_level = "info"                 # optional; --log-level wins
//! state_dir = "/var/lib/vblade-rs"   # keep config strings, masks, reservations (--state-dir)
//! metrics = "127.0.0.1:9188"         # Prometheus text on http://ADDRESS/metrics (--metrics)
//! control_socket = "/run/vblade-rs/control.sock"   # for `host-sim stats` (--control)
//! allow_duplicate = false            # serve even when another target answers our shelf.slot
//! wait_link = 30                     # seconds to wait for a missing or down interface at
//!                                    # start before refusing (--wait-link; default: forever)
//! link = "auto"                      # optional: auto, xdp, ring, socket; --link wins
//! workers = 1                        # optional: threads per interface; --workers wins
//! busy_poll_us = 0                   # optional: spin before sleeping; --busy-poll wins
//!
//! [[export]]
//! shelf = 1
//! slot = 0
//! interfaces = ["eth1", "eth2"]      # raw sockets (AF_PACKET)
//! taps = []                          # TAP devices
//! file = "/srv/aoe/disk0.img"
//! buffer_count = 64                  # -b
//! offset = 0                         # -o, sectors
//! length = 2097152                   # -l, sectors (default: the rest of the file)
//! direct = false                     # -d
//! sync = false                       # -s
//! writeback = false                  # --writeback (acknowledge from the page cache)
//! read_only = false                  # -r
//! mac_mask = ["00:11:22:33:44:55"]   # -m; a preset of the mask list
//! config_string = "rack 4"           # preset of the config string
//! reserve = []                       # preset of the reserve list
//! pin = ["mac_mask"]                 # initiators may not change these (of config_string,
//!                                    # mac_mask, reserve)
//!
//! [[export]]
//! shelf = 1
//! slot = 1
//! interfaces = ["eth1"]
//! # A Ceph RBD image (conf, id, keyring and a snapshot are optional) or an NBD export
//! # ("nbd+unix:///EXPORT?socket=PATH", "nbd://HOST:PORT/EXPORT").
//! file = "rbd:rbd/disk1:conf=/etc/ceph/ceph.conf:id=aoe"
//! ha = "rbd-lock"                    # several gateways, one active (the lock holder)
//! ```
//!
//! Presets are the target state an export starts with when nothing is saved for it in the
//! state directory, or when the preset changed since (see `state`).
//!
//! Guarantees: [`parse`] never panics; it refuses unknown keys (a typo must not silently
//! change an export), values out of range, the reserved shelves and slot, a config without
//! exports, and two exports with the same shelf.slot on one interface, each with a message that
//! names the export or the line. [`load`] also refuses one file exported twice where a
//! writable export's sectors overlap another's (see `guard::check_shared_files`).

use crate::cli::parse_level;
use crate::spec::{
    self, Backing, DEFAULT_BUFFER_COUNT, ExportSpec, Ha, NetOptions, SpecError, StatePresets,
};
use aoe_core::target::Pinned;
use aoe_net::LinkSpec;
use aoe_storage::file::DiskOptions;
use log::LevelFilter;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A parsed config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// `log_level`, if set.
    pub log_level: Option<LevelFilter>,
    /// The daemon's settings the file gives (the command line's win).
    pub daemon: DaemonKeys,
    /// The exports, in file order.
    pub exports: Vec<ExportSpec>,
    /// `link`, `workers`, `busy_poll_us`, where set.
    pub net: NetOptions,
}

/// The top-level keys that set up the daemon rather than an export; each is also a command
/// line option, which wins.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DaemonKeys {
    /// `state_dir` (`--state-dir`).
    pub state_dir: Option<PathBuf>,
    /// `metrics` (`--metrics`).
    pub metrics: Option<std::net::SocketAddr>,
    /// `control_socket` (`--control`).
    pub control_socket: Option<PathBuf>,
    /// `allow_duplicate` (`--allow-duplicate`).
    pub allow_duplicate: Option<bool>,
    /// `wait_link`, in seconds (`--wait-link`).
    pub wait_link: Option<std::time::Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    log_level: Option<String>,
    state_dir: Option<PathBuf>,
    metrics: Option<String>,
    control_socket: Option<PathBuf>,
    allow_duplicate: Option<bool>,
    wait_link: Option<u32>,
    link: Option<String>,
    workers: Option<u16>,
    busy_poll_us: Option<u32>,
    #[serde(default)]
    export: Vec<RawExport>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExport {
    shelf: u16,
    slot: u8,
    #[serde(default)]
    interfaces: Vec<String>,
    #[serde(default)]
    taps: Vec<String>,
    file: PathBuf,
    buffer_count: Option<u16>,
    #[serde(default)]
    offset: u64,
    length: Option<u64>,
    #[serde(default)]
    direct: bool,
    #[serde(default)]
    sync: bool,
    #[serde(default)]
    writeback: bool,
    #[serde(default)]
    read_only: bool,
    #[serde(default)]
    mac_mask: Vec<String>,
    config_string: Option<String>,
    #[serde(default)]
    reserve: Vec<String>,
    #[serde(default)]
    pin: Vec<String>,
    ha: Option<String>,
}

/// Reads and parses `path`; relative `file` paths are taken relative to the config file's
/// directory.
///
/// # Errors
/// When the file cannot be read or [`parse`] refuses it; the message names the file.
pub fn load(path: &Path) -> Result<ConfigFile, SpecError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| SpecError(format!("cannot read {}: {error}", path.display())))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let config =
        parse(&text, base).map_err(|error| SpecError(format!("{}: {error}", path.display())))?;
    crate::guard::check_shared_files(&config.exports)
        .map_err(|error| SpecError(format!("{}: {error}", path.display())))?;
    Ok(config)
}

/// Parses config text; relative file paths are joined to `base`.
///
/// # Errors
/// A message naming the problem (and, for syntax errors, the line).
pub fn parse(text: &str, base: &Path) -> Result<ConfigFile, SpecError> {
    let raw: RawFile = toml::from_str(text).map_err(|error| {
        // toml's message spans several lines (with a source excerpt); keep it on one.
        let message = error.to_string();
        let line = message.split_whitespace().collect::<Vec<_>>().join(" ");
        SpecError(line)
    })?;
    let log_level = raw.log_level.as_deref().map(parse_level).transpose()?;
    let metrics = match &raw.metrics {
        Some(text) => Some(crate::cli::parse_address(text)?),
        None => None,
    };
    let daemon = DaemonKeys {
        state_dir: raw.state_dir.as_ref().map(|dir| base.join(dir)),
        metrics,
        control_socket: raw.control_socket.clone(),
        allow_duplicate: raw.allow_duplicate,
        wait_link: raw
            .wait_link
            .map(|seconds| std::time::Duration::from_secs(u64::from(seconds))),
    };
    let net = NetOptions {
        link: raw
            .link
            .as_deref()
            .map(|text| text.parse().map_err(SpecError))
            .transpose()?,
        workers: raw.workers,
        busy_poll_us: raw.busy_poll_us,
    };
    net.validate()?;
    if raw.export.is_empty() {
        return Err(SpecError("no [[export]] tables: nothing to serve".into()));
    }
    let mut exports = Vec::with_capacity(raw.export.len());
    for (index, export) in raw.export.into_iter().enumerate() {
        let name = format!("export #{} (e{}.{})", index + 1, export.shelf, export.slot);
        let mut mac_mask = Vec::with_capacity(export.mac_mask.len());
        for text in &export.mac_mask {
            mac_mask.push(
                spec::parse_initiator_mac(text).map_err(|e| SpecError(format!("{name}: {e}")))?,
            );
        }
        let mut reserve = Vec::with_capacity(export.reserve.len());
        for text in &export.reserve {
            reserve.push(
                spec::parse_initiator_mac(text).map_err(|e| SpecError(format!("{name}: {e}")))?,
            );
        }
        let mut pinned = Pinned::default();
        for part in &export.pin {
            match part.as_str() {
                "config_string" => pinned.config_string = true,
                "mac_mask" => pinned.mask = true,
                "reserve" => pinned.reservations = true,
                other => {
                    return Err(SpecError(format!(
                        "{name}: pin {other:?} is not one of config_string, mac_mask, reserve"
                    )));
                }
            }
        }
        let links = export
            .interfaces
            .iter()
            .map(|name| LinkSpec::packet(name))
            .chain(export.taps.iter().map(|name| LinkSpec::tap(name)))
            .collect();
        let spec = ExportSpec {
            shelf: export.shelf,
            slot: export.slot,
            links,
            // Network storage names no path relative to the config file.
            file: if Backing::is_remote(&export.file) {
                export.file.clone()
            } else {
                base.join(&export.file)
            },
            buffer_count: export.buffer_count.unwrap_or(DEFAULT_BUFFER_COUNT),
            disk: DiskOptions {
                direct: export.direct,
                sync: export.sync,
                writeback: export.writeback,
                read_only: export.read_only,
                offset: export.offset,
                length: export.length,
            },
            mac_mask,
            state: StatePresets {
                config_string: export.config_string.unwrap_or_default().into_bytes(),
                reserve,
                pinned,
            },
            ha: export
                .ha
                .as_deref()
                .map(Ha::parse)
                .transpose()
                .map_err(|e| SpecError(format!("{name}: {e}")))?
                .unwrap_or_default(),
        };
        spec.validate()
            .map_err(|e| SpecError(format!("{name}: {e}")))?;
        exports.push(spec);
    }
    for (index, export) in exports.iter().enumerate() {
        for other in &exports[..index] {
            if (export.shelf, export.slot) != (other.shelf, other.slot) {
                continue;
            }
            if let Some(link) = export.links.iter().find(|l| other.links.contains(l)) {
                return Err(SpecError(format!(
                    "{} is exported twice on {}",
                    export.name(),
                    link.interface()
                )));
            }
        }
    }
    Ok(ConfigFile {
        log_level,
        daemon,
        exports,
        net,
    })
}

#[cfg(test)]
mod test {
    use super::*;

    const EXAMPLE: &str = r#"
log_level = "debug"
link = "socket"
workers = 2
busy_poll_us = 20

[[export]]
shelf = 1
slot = 0
interfaces = ["eth1", "eth2"]
file = "/srv/aoe/disk0.img"
buffer_count = 32
offset = 8
length = 2048
direct = true
sync = true
read_only = true
mac_mask = ["00:11:22:33:44:55"]

[[export]]
shelf = 1
slot = 1
taps = ["tap0"]
file = "disk1.img"
writeback = true
"#;

    #[test]
    fn the_documented_example_parses() {
        let config = parse(EXAMPLE, Path::new("/etc/aoe")).unwrap();
        assert_eq!(config.log_level, Some(LevelFilter::Debug));
        assert_eq!(
            config.net,
            NetOptions {
                link: Some(aoe_net::LinkKind::Socket),
                workers: Some(2),
                busy_poll_us: Some(20)
            }
        );
        assert_eq!(config.exports.len(), 2);
        let first = &config.exports[0];
        assert_eq!((first.shelf, first.slot, first.buffer_count), (1, 0, 32));
        assert_eq!(
            first.links,
            vec![LinkSpec::packet("eth1"), LinkSpec::packet("eth2")]
        );
        assert_eq!(first.file, PathBuf::from("/srv/aoe/disk0.img"));
        assert_eq!(
            first.disk,
            DiskOptions {
                direct: true,
                sync: true,
                writeback: false,
                read_only: true,
                offset: 8,
                length: Some(2048)
            }
        );
        assert_eq!(
            first.mac_mask,
            vec![aoe_net::EthernetAddress([0, 0x11, 0x22, 0x33, 0x44, 0x55])]
        );
        let second = &config.exports[1];
        assert_eq!(second.links, vec![LinkSpec::tap("tap0")]);
        assert_eq!(second.file, PathBuf::from("/etc/aoe/disk1.img"));
        assert_eq!(second.buffer_count, DEFAULT_BUFFER_COUNT);
        assert_eq!(
            second.disk,
            DiskOptions {
                writeback: true,
                ..DiskOptions::default()
            }
        );
    }

    #[test]
    fn the_module_doc_example_parses() {
        let doc = include_str!("config.rs");
        let example: String = doc
            .lines()
            .skip_while(|line| !line.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|line| !line.starts_with("//! ```"))
            .map(|line| line.trim_start_matches("//!").trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        let config = parse(&example, Path::new("/")).unwrap();
        assert_eq!(config.exports[0].links.len(), 2);
        let rbd = &config.exports[1];
        assert_eq!(rbd.ha, Ha::RbdLock);
        assert_eq!(
            rbd.file,
            PathBuf::from("rbd:rbd/disk1:conf=/etc/ceph/ceph.conf:id=aoe"),
            "not joined to the config's directory"
        );
    }

    #[test]
    fn the_packaged_example_parses_once_uncommented() {
        // packaging/exports.toml ships with every key commented out; uncommented (the lines
        // `# key = ...` and `# [[export]]`), it must be a valid config.
        let shipped = include_str!("../../packaging/exports.toml");
        assert!(
            parse(shipped, Path::new("/"))
                .unwrap_err()
                .0
                .contains("no [[export]]")
        );
        let uncommented: String = shipped
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest)
                    if rest.starts_with("[[export]]")
                        || rest.split_once(" = ").is_some_and(|(key, _)| {
                            key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                        }) =>
                {
                    rest
                }
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let config = parse(&uncommented, Path::new("/etc/vblade-rs")).unwrap();
        assert_eq!(config.exports.len(), 2);
        assert_eq!(
            config.daemon.metrics,
            Some("127.0.0.1:9188".parse().unwrap())
        );
        assert_eq!(config.exports[0].state.config_string, b"rack 4");
        assert!(config.exports[0].state.pinned.mask);
        assert!(config.exports[1].disk.read_only);
    }

    #[test]
    fn bad_configs_are_refused_with_a_reason() {
        let export = |body: &str| {
            format!(
                "[[export]]\nshelf = 1\nslot = 0\nfile = \"f\"\ninterfaces = [\"eth1\"]\n{body}\n"
            )
        };
        let cases = [
            (String::new(), "no [[export]]"),
            (
                "[[export]]\nshelf = 1\nslot = 0\n".to_owned(),
                "missing field `file`",
            ),
            (export("colour = \"blue\""), "unknown field `colour`"),
            (export("buffer_count = 1"), "below 2"),
            (export("buffer_count = 70000"), "buffer_count"),
            (
                export("mac_mask = [\"nonsense\"]"),
                "export #1 (e1.0): \"nonsense\" is not a MAC",
            ),
            (export("offset = -1"), "offset"),
            (export("ha = \"rbd-lock\""), "needs a writable rbd:"),
            (export("ha = \"vrrp\""), "ha \"vrrp\""),
            (export("log_level = 3"), "unknown field `log_level`"),
            (
                "link = \"fast\"\n".to_owned() + &export(""),
                "link \"fast\" is not one of",
            ),
            (
                "workers = 0\n".to_owned() + &export(""),
                "0 workers per link",
            ),
            (
                "log_level = \"loud\"\n".to_owned() + &export(""),
                "log level \"loud\"",
            ),
            (
                "[[export]]\nshelf = 65535\nslot = 0\nfile = \"f\"\ninterfaces = [\"e\"]\n"
                    .to_owned(),
                "broadcast shelf",
            ),
            (
                "[[export]]\nshelf = 1\nslot = 255\nfile = \"f\"\ninterfaces = [\"e\"]\n"
                    .to_owned(),
                "broadcast slot",
            ),
            (
                "[[export]]\nshelf = 1\nslot = 0\nfile = \"f\"\n".to_owned(),
                "no interface or TAP",
            ),
            (export("") + &export(""), "e1.0 is exported twice on eth1"),
            (
                export("pin = [\"everything\"]"),
                "pin \"everything\" is not one of",
            ),
            (
                export("reserve = [\"nope\"]"),
                "export #1 (e1.0): \"nope\" is not a MAC",
            ),
            (
                export(&format!("config_string = \"{}\"", "x".repeat(1025))),
                "a config string of 1025 bytes",
            ),
            (
                "metrics = \"here\"\n".to_owned() + &export(""),
                "metrics address \"here\" is not IP:PORT",
            ),
            ("[[export]\nshelf = 1".to_owned(), "line 1"),
        ];
        for (text, expected) in cases {
            match parse(&text, Path::new("/")) {
                Err(error) => {
                    assert!(
                        error.0.contains(expected),
                        "{text:?}: {:?} lacks {expected:?}",
                        error.0
                    );
                    assert!(!error.0.contains('\n'), "one line: {:?}", error.0);
                }
                Ok(config) => panic!("{text:?} accepted: {config:?}"),
            }
        }
    }

    #[test]
    fn same_address_on_different_interfaces_is_allowed() {
        let text = "[[export]]\nshelf = 1\nslot = 0\nfile = \"a\"\ninterfaces = [\"eth1\"]\n\
                    [[export]]\nshelf = 1\nslot = 0\nfile = \"b\"\ninterfaces = [\"eth2\"]\n";
        assert_eq!(parse(text, Path::new("/")).unwrap().exports.len(), 2);
    }

    #[test]
    fn load_names_the_file() {
        let error = load(Path::new("/nonexistent/host-sim.toml")).unwrap_err();
        assert!(
            error
                .0
                .starts_with("cannot read /nonexistent/host-sim.toml"),
            "{}",
            error.0
        );
    }
}
