//! Target state that survives a restart: the config string, MAC mask list and reserve list of
//! every export, one small file per export in a state directory (`--state-dir`, the packaged
//! service uses `/var/lib/vblade-rs`).
//!
//! Guarantees:
//!
//! * **Atomic and durable**: [`StateStore::save`] writes a temporary file, `fsync`s it, renames
//!   it over the record and `fsync`s the directory, so a crash leaves either the old record or
//!   the new one, never a mix, and a record that was saved is on stable storage. The channel
//!   saves before it sends the reply that acknowledges a change (see `channel`), so an initiator
//!   never hears of a change a restart would lose.
//! * **Tied to the export's identity**: a record names its shelf, slot and the canonical path
//!   of its file; it is found by that identity only ([`StateStore::path_for`]), so an export
//!   that changes its shelf.slot or its file starts afresh, and one that changes anything else
//!   keeps its state.
//! * **Refuses what it cannot read**: a record that exists but does not parse is an error that
//!   names the file, not a silent fresh start (which would drop a reservation).
//! * Records also keep the presets (`config_string`, `mac_mask`, `reserve` of the export's
//!   configuration) they started from, so that an administrator's later change of a preset
//!   wins over the saved value (see `export`).

use aoe_net::{EthernetAddress, MacText};
use serde::Deserialize;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The record format this code writes and reads.
const FORMAT: u32 = 1;

/// What identifies an export's state: its address and its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Shelf.
    pub shelf: u16,
    /// Slot.
    pub slot: u8,
    /// The file or device, canonical (symbolic links resolved).
    pub file: PathBuf,
}

impl Identity {
    /// The identity of `shelf.slot` on `file`, canonicalised when the file exists.
    pub fn of(shelf: u16, slot: u8, file: &Path) -> Identity {
        Identity {
            shelf,
            slot,
            file: std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf()),
        }
    }
}

/// Config string, MAC mask list and reserve list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TargetState {
    /// The config string.
    pub config_string: Vec<u8>,
    /// The MAC mask list.
    pub mask: Vec<EthernetAddress>,
    /// The reserve list.
    pub reserve: Vec<EthernetAddress>,
}

impl TargetState {
    /// The state of an engine.
    pub fn of<D: aoe_core::Disk>(target: &aoe_core::Target<D>) -> TargetState {
        TargetState {
            config_string: target.config_string().to_vec(),
            mask: target.mask().to_vec(),
            reserve: target.reservations().to_vec(),
        }
    }

    /// Makes `target`'s state this one (the lists in this order).
    ///
    /// # Errors
    /// When a part does not fit the engine's limits (1024 octets, 32 MACs each).
    pub fn apply_to<D: aoe_core::Disk>(
        &self,
        target: &mut aoe_core::Target<D>,
    ) -> Result<(), aoe_core::target::StateError> {
        target.set_config_string(&self.config_string)?;
        if target.mask() != self.mask.as_slice() {
            let old: Vec<EthernetAddress> = target.mask().to_vec();
            for mac in &old {
                target.mask_remove(mac);
            }
            for mac in &self.mask {
                target.mask_add(*mac)?;
            }
        }
        target.set_reservations(&self.reserve)
    }

    /// A one-line summary for logs.
    pub fn describe(&self) -> String {
        format!(
            "config string {:?}, {} MAC(s) in the mask, {} reserved",
            String::from_utf8_lossy(&self.config_string),
            self.mask.len(),
            self.reserve.len()
        )
    }
}

/// One export's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Whose state it is.
    pub identity: Identity,
    /// The state as initiators left it.
    pub state: TargetState,
    /// The presets of the configuration when the state was saved.
    pub presets: TargetState,
}

/// The state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateStore {
    dir: PathBuf,
}

/// FNV-1a, 64 bits: a short, stable name for a path (no cryptographic need).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn mac_list(macs: &[EthernetAddress]) -> String {
    let items: Vec<String> = macs
        .iter()
        .map(|mac| toml_string(&MacText(*mac).to_string()))
        .collect();
    format!("[{}]", items.join(", "))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    format: u32,
    shelf: u16,
    slot: u8,
    file: String,
    config_string_hex: String,
    mac_mask: Vec<String>,
    reserve: Vec<String>,
    preset: RawPreset,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPreset {
    config_string_hex: String,
    mac_mask: Vec<String>,
    reserve: Vec<String>,
}

fn macs_of(texts: &[String]) -> Result<Vec<EthernetAddress>, String> {
    texts
        .iter()
        .map(|text| aoe_net::parse_mac(text).map_err(|error| error.to_string()))
        .collect()
}

impl Record {
    /// The record as the file holds it.
    pub fn to_text(&self) -> String {
        let id = &self.identity;
        let file = id.file.to_string_lossy();
        format!(
            "# host-sim target state of e{}.{} on {file}: the config string, MAC mask and\n\
             # reserve lists as initiators left them. Written before the reply that acknowledges\n\
             # a change; do not edit while host-sim runs.\n\
             # config string: {:?}\n\
             format = {FORMAT}\n\
             shelf = {}\n\
             slot = {}\n\
             file = {}\n\
             config_string_hex = \"{}\"\n\
             mac_mask = {}\n\
             reserve = {}\n\
             \n\
             # The configuration's presets when this was saved: a preset changed since wins.\n\
             [preset]\n\
             config_string_hex = \"{}\"\n\
             mac_mask = {}\n\
             reserve = {}\n",
            id.shelf,
            id.slot,
            String::from_utf8_lossy(&self.state.config_string),
            id.shelf,
            id.slot,
            toml_string(&file),
            hex(&self.state.config_string),
            mac_list(&self.state.mask),
            mac_list(&self.state.reserve),
            hex(&self.presets.config_string),
            mac_list(&self.presets.mask),
            mac_list(&self.presets.reserve),
        )
    }

    /// Reads a record.
    ///
    /// # Errors
    /// A message saying what is wrong with it.
    pub fn from_text(text: &str) -> Result<Record, String> {
        let raw: RawRecord = toml::from_str(text).map_err(|error| {
            error
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })?;
        if raw.format != FORMAT {
            return Err(format!(
                "format {} is not the {FORMAT} this host-sim reads",
                raw.format
            ));
        }
        let bytes = |text: &str| unhex(text).ok_or("a config string that is not hex".to_string());
        Ok(Record {
            identity: Identity {
                shelf: raw.shelf,
                slot: raw.slot,
                file: PathBuf::from(raw.file),
            },
            state: TargetState {
                config_string: bytes(&raw.config_string_hex)?,
                mask: macs_of(&raw.mac_mask)?,
                reserve: macs_of(&raw.reserve)?,
            },
            presets: TargetState {
                config_string: bytes(&raw.preset.config_string_hex)?,
                mask: macs_of(&raw.preset.mac_mask)?,
                reserve: macs_of(&raw.preset.reserve)?,
            },
        })
    }
}

impl StateStore {
    /// The store in `dir`, made (mode 0700) if it does not exist. A probe file is written and
    /// removed, so that a directory the process cannot write to is refused at start, not at the
    /// first control command.
    ///
    /// # Errors
    /// When the directory cannot be made or written to.
    pub fn open(dir: &Path) -> Result<StateStore, String> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|error| format!("cannot make state directory {}: {error}", dir.display()))?;
        let probe = dir.join(format!(".probe-{}", std::process::id()));
        std::fs::write(&probe, b"")
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|error| {
                format!("cannot write to state directory {}: {error}", dir.display())
            })?;
        Ok(StateStore {
            dir: dir.to_path_buf(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the record of `identity` lives: `eS.L-<hash of the file's path>.state`.
    pub fn path_for(&self, identity: &Identity) -> PathBuf {
        let path = identity.file.as_os_str().as_encoded_bytes();
        self.dir.join(format!(
            "e{}.{}-{:016x}.state",
            identity.shelf,
            identity.slot,
            fnv1a(path)
        ))
    }

    /// The saved record of `identity`, if there is one.
    ///
    /// # Errors
    /// When a record exists but cannot be read or parsed (naming the file).
    pub fn load(&self, identity: &Identity) -> Result<Option<Record>, String> {
        let path = self.path_for(identity);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
        };
        let record = Record::from_text(&text).map_err(|error| {
            format!(
                "state file {} is damaged ({error}); repair or remove it",
                path.display()
            )
        })?;
        // Another identity with the same hash: not ours (never seen, but never mixed up).
        if record.identity != *identity {
            return Ok(None);
        }
        Ok(Some(record))
    }

    /// Saves `record` atomically and durably (see the [module docs](self)).
    ///
    /// # Errors
    /// When any step fails; the previous record is then still intact.
    pub fn save(&self, record: &Record) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let path = self.path_for(&record.identity);
        let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
        let result = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temporary)?;
            file.write_all(record.to_text().as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&temporary, &path)?;
            std::fs::File::open(&self.dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        result
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use aoe_testkit::scratch::Scratch;

    fn record(file: &Path) -> Record {
        Record {
            identity: Identity::of(1, 2, file),
            state: TargetState {
                config_string: b"rack \"4\"\n\\ \xff".to_vec(),
                mask: vec![EthernetAddress([2, 0, 0, 0, 0, 1])],
                reserve: vec![
                    EthernetAddress([2, 0, 0, 0, 0, 1]),
                    EthernetAddress([2, 0, 0, 0, 0, 2]),
                ],
            },
            presets: TargetState {
                config_string: b"preset".to_vec(),
                mask: vec![],
                reserve: vec![EthernetAddress([2, 0, 0, 0, 0, 3])],
            },
        }
    }

    #[test]
    fn records_round_trip_and_are_found_by_identity_only() {
        let scratch = Scratch::new("state");
        let disk = scratch.sparse("disk \"one\".img", 4096);
        let store = StateStore::open(&scratch.dir.join("state")).unwrap();
        let saved = record(&disk);
        assert_eq!(store.load(&saved.identity).unwrap(), None);
        store.save(&saved).unwrap();
        assert_eq!(store.load(&saved.identity).unwrap(), Some(saved.clone()));
        // Another slot, or the same slot on another file: nothing saved for them.
        assert_eq!(store.load(&Identity::of(1, 3, &disk)).unwrap(), None);
        let other = scratch.sparse("other.img", 4096);
        assert_eq!(store.load(&Identity::of(1, 2, &other)).unwrap(), None);
        // A symbolic link to the same file is the same identity.
        let link = scratch.dir.join("link.img");
        std::os::unix::fs::symlink(&disk, &link).unwrap();
        assert_eq!(
            store.load(&Identity::of(1, 2, &link)).unwrap(),
            Some(saved.clone())
        );
        // A second save replaces the first; no temporary file is left.
        let mut changed = saved.clone();
        changed.state.reserve.clear();
        store.save(&changed).unwrap();
        assert_eq!(store.load(&saved.identity).unwrap(), Some(changed));
        let names: Vec<String> = std::fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(names[0].starts_with("e1.2-") && names[0].ends_with(".state"));
        let text = std::fs::read_to_string(store.path_for(&saved.identity)).unwrap();
        assert!(
            text.contains("# config string: \"rack \\\"4\\\"\\n\\\\ \u{fffd}\""),
            "{text}"
        );
    }

    #[test]
    fn a_damaged_record_is_an_error_that_names_it() {
        let scratch = Scratch::new("state-bad");
        let disk = scratch.sparse("disk.img", 4096);
        let store = StateStore::open(&scratch.dir).unwrap();
        let saved = record(&disk);
        let path = store.path_for(&saved.identity);
        for damage in [
            "format = 1\n",
            "garbage",
            &record(&disk).to_text().replace("format = 1", "format = 2"),
            &record(&disk)
                .to_text()
                .replace("config_string_hex = \"7261", "config_string_hex = \"zz61"),
            &record(&disk)
                .to_text()
                .replace("02:00:00:00:00:02", "02:00:00"),
        ] {
            std::fs::write(&path, damage).unwrap();
            let error = store.load(&saved.identity).unwrap_err();
            assert!(
                error.contains(&path.display().to_string()) && error.contains("damaged"),
                "{error}"
            );
        }
    }

    #[test]
    fn an_unwritable_directory_is_refused_at_open() {
        let scratch = Scratch::new("state-ro");
        let file = scratch.file("not-a-dir", b"x");
        let error = StateStore::open(&file.join("sub")).unwrap_err();
        assert!(error.contains("cannot make state directory"), "{error}");
    }

    #[test]
    fn state_applies_to_an_engine_and_reads_back() {
        use aoe_core::disk::MemDisk;
        use aoe_core::{Config, Target};
        let mut target = Target::new(Config::new(1, 2), MemDisk::new(vec![0u8; 4096])).unwrap();
        target
            .mask_add(EthernetAddress([2, 0, 0, 0, 0, 9]))
            .unwrap();
        let state = record(Path::new("/x")).state;
        state.apply_to(&mut target).unwrap();
        assert_eq!(TargetState::of(&target), state);
        let too_long = TargetState {
            config_string: vec![b'x'; 1025],
            ..TargetState::default()
        };
        assert!(too_long.apply_to(&mut target).is_err());
    }
}
