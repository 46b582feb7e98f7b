//! The TOML config file: many exports in one process, reloaded on SIGHUP.
//!
//! ```toml
//! log_level = "info"                 # optional; --log-level wins
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
//! read_only = false                  # -r
//! mac_mask = ["00:11:22:33:44:55"]   # -m
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
//! Guarantees: [`parse`] never panics; it refuses unknown keys (a typo must not silently
//! change an export), values out of range, the reserved shelves and slot, a config without
//! exports, and two exports with the same shelf.slot on one interface, each with a message that
//! names the export or the line.

use crate::cli::parse_level;
use crate::spec::{self, Backing, DEFAULT_BUFFER_COUNT, ExportSpec, Ha, SpecError};
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
    /// The exports, in file order.
    pub exports: Vec<ExportSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    log_level: Option<String>,
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
    read_only: bool,
    #[serde(default)]
    mac_mask: Vec<String>,
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
    parse(&text, base).map_err(|error| SpecError(format!("{}: {error}", path.display())))
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
                read_only: export.read_only,
                offset: export.offset,
                length: export.length,
            },
            mac_mask,
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
    Ok(ConfigFile { log_level, exports })
}

#[cfg(test)]
mod test {
    use super::*;

    const EXAMPLE: &str = r#"
log_level = "debug"

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
"#;

    #[test]
    fn the_documented_example_parses() {
        let config = parse(EXAMPLE, Path::new("/etc/aoe")).unwrap();
        assert_eq!(config.log_level, Some(LevelFilter::Debug));
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
        assert_eq!(second.disk, DiskOptions::default());
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
