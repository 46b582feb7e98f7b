//! `aoe kernel ...`: the Linux `aoe` driver's view, what aoetools' `aoe-stat`, `aoe-flush`,
//! `aoe-revalidate`, `aoe-discover` and `aoe-interfaces` show and do. No network: sysfs
//! (`/sys/block/etherd!eS.L/*`, `/sys/module/aoe`) and the driver's character devices
//! (`/dev/etherd/{flush,revalidate,discover,interfaces}`), under roots a test can move.
//!
//! Guarantees: reading never changes anything; every write goes to the one driver file the
//! command names, with the driver's own syntax (`all`, a device name, interface names); a
//! missing driver or device is an error that says so.

use super::KernelCommand;
use super::output::{json_string, size_text};
use crate::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// How long `kernel flush` waits for the driver to let the devices go.
const FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Where the driver's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelPaths {
    /// `/sys/block`.
    pub sys_block: PathBuf,
    /// `/sys/module/aoe`.
    pub module: PathBuf,
    /// `/dev/etherd`.
    pub dev: PathBuf,
    /// `/sys/class/net` (which interfaces can carry AoE).
    pub sys_class_net: PathBuf,
}

impl Default for KernelPaths {
    fn default() -> KernelPaths {
        KernelPaths::under(Path::new("/"))
    }
}

impl KernelPaths {
    /// The paths below `root` (a test's fake tree).
    pub fn under(root: &Path) -> KernelPaths {
        KernelPaths {
            sys_block: root.join("sys/block"),
            module: root.join("sys/module/aoe"),
            dev: root.join("dev/etherd"),
            sys_class_net: root.join("sys/class/net"),
        }
    }
}

/// One device of the driver, as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// `e1.2`.
    pub name: String,
    /// Shelf and slot, for sorting.
    pub address: (u32, u32),
    /// Size in 512-byte sectors.
    pub sectors: u64,
    /// `up`, `down`, `up,kickme`...
    pub state: String,
    /// The interfaces the driver reaches it on.
    pub interface: String,
    /// Bytes of data per frame.
    pub payload: String,
    /// The target's firmware version.
    pub firmware: String,
    /// The target's MAC(s) as the driver prints them.
    pub mac: String,
}

fn attribute(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .map(|text| text.trim().to_owned())
        .unwrap_or_default()
}

/// The driver's devices, sorted by shelf and slot.
///
/// # Errors
/// When the driver is not loaded, or sysfs cannot be read.
pub fn devices(paths: &KernelPaths) -> Result<Vec<Device>, Error> {
    if !paths.module.exists() {
        return Err(Error::Invalid(format!(
            "the aoe driver is not loaded ({} is missing): modprobe aoe",
            paths.module.display()
        )));
    }
    let entries = std::fs::read_dir(&paths.sys_block).map_err(|err| {
        Error::Invalid(format!("cannot read {}: {err}", paths.sys_block.display()))
    })?;
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(name) = file_name
            .to_str()
            .and_then(|name| name.strip_prefix("etherd!"))
        else {
            continue;
        };
        let dir = entry.path();
        let address = name
            .strip_prefix('e')
            .and_then(|rest| rest.split_once('.'))
            .and_then(|(shelf, slot)| Some((shelf.parse().ok()?, slot.parse().ok()?)))
            .unwrap_or((u32::MAX, u32::MAX));
        found.push(Device {
            name: name.to_owned(),
            address,
            sectors: attribute(&dir, "size").parse().unwrap_or(0),
            state: attribute(&dir, "state"),
            interface: attribute(&dir, "netif"),
            payload: attribute(&dir, "payload"),
            firmware: attribute(&dir, "firmware-version"),
            mac: attribute(&dir, "mac"),
        });
    }
    found.sort_by(|a, b| (a.address, &a.name).cmp(&(b.address, &b.name)));
    Ok(found)
}

/// Writes `text` to the driver file `name` (one `write`, as the driver takes one command per
/// write).
fn command(paths: &KernelPaths, name: &str, text: &str) -> Result<(), Error> {
    use std::io::Write as _;
    let path = paths.dev.join(name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|err| {
            Error::Invalid(format!(
                "cannot open {}: {err} (is the aoe driver loaded, and are you root?)",
                path.display()
            ))
        })?;
    file.write_all(text.as_bytes())
        .map_err(|err| Error::Invalid(format!("{} refused {text:?}: {err}", path.display())))
}

/// Runs a `kernel` command, writing what it shows to `out`.
///
/// # Errors
/// A missing driver, a device the driver does not know, a refused write.
pub fn run(
    paths: &KernelPaths,
    what: &KernelCommand,
    json: bool,
    out: &mut dyn std::io::Write,
) -> Result<(), Error> {
    let mut text = String::new();
    match what {
        KernelCommand::Stat => {
            let devices = devices(paths)?;
            if json {
                let items: Vec<String> = devices
                    .iter()
                    .map(|d| {
                        format!(
                            "{{\"device\":{},\"sectors\":{},\"bytes\":{},\"state\":{},\
                             \"interface\":{},\"payload\":{},\"firmware\":{},\"mac\":{}}}",
                            json_string(&d.name),
                            d.sectors,
                            d.sectors * 512,
                            json_string(&d.state),
                            json_string(&d.interface),
                            json_string(&d.payload),
                            json_string(&d.firmware),
                            json_string(&d.mac)
                        )
                    })
                    .collect();
                let _ = writeln!(text, "[{}]", items.join(","));
            } else if devices.is_empty() {
                eprintln!("aoe: the aoe driver has no devices (aoe kernel discover asks again)");
            } else {
                let _ = writeln!(
                    text,
                    "{:<10} {:>10} {:>12}  {:<10} {:<10} {:>7}  {:<8} mac",
                    "device", "size", "sectors", "state", "interface", "payload", "firmware"
                );
                for d in &devices {
                    let _ = writeln!(
                        text,
                        "{:<10} {:>10} {:>12}  {:<10} {:<10} {:>7}  {:<8} {}",
                        d.name,
                        size_text(d.sectors),
                        d.sectors,
                        d.state,
                        d.interface,
                        d.payload,
                        d.firmware,
                        d.mac
                    );
                }
            }
        }
        KernelCommand::Flush {
            all,
            devices: names,
        } => {
            let known = devices(paths)?;
            for name in names {
                if !known.iter().any(|d| &d.name == name) {
                    return Err(Error::Invalid(format!(
                        "the aoe driver has no device {name}"
                    )));
                }
            }
            if *all {
                command(paths, "flush", "all")?;
            } else if names.is_empty() {
                // Fewer than three octets: the driver drops the devices that are down.
                command(paths, "flush", "\n")?;
            } else {
                for name in names {
                    command(paths, "flush", name)?;
                }
            }
            // The driver may take a moment to let a device go: wait (at most 2 s) until the
            // ones asked for are gone.
            let done = |left: &[Device]| {
                if *all {
                    left.is_empty()
                } else if names.is_empty() {
                    !left.iter().any(|d| d.state.starts_with("down"))
                } else {
                    !left.iter().any(|d| names.contains(&d.name))
                }
            };
            let deadline = std::time::Instant::now() + FLUSH_WAIT;
            let mut left = devices(paths)?;
            while !done(&left) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(100));
                left = devices(paths)?;
            }
            let gone: Vec<&str> = known
                .iter()
                .filter(|d| !left.iter().any(|l| l.name == d.name))
                .map(|d| d.name.as_str())
                .collect();
            let _ = writeln!(
                text,
                "flushed: {}",
                if gone.is_empty() {
                    "none".to_string()
                } else {
                    gone.join(" ")
                }
            );
            let kept: Vec<&str> = names
                .iter()
                .filter(|name| left.iter().any(|d| &&d.name == name))
                .map(String::as_str)
                .collect();
            if !kept.is_empty() {
                out.write_all(text.as_bytes())?;
                return Err(Error::Invalid(format!(
                    "the aoe driver kept {} (open, or busy)",
                    kept.join(" ")
                )));
            }
        }
        KernelCommand::Revalidate(names) => {
            let known = devices(paths)?;
            for name in names {
                if !known.iter().any(|d| &d.name == name) {
                    return Err(Error::Invalid(format!(
                        "the aoe driver has no device {name}"
                    )));
                }
                command(paths, "revalidate", name)?;
                let _ = writeln!(text, "revalidating {name}");
            }
        }
        KernelCommand::Discover => {
            devices(paths)?;
            command(paths, "discover", "1")?;
            let _ = writeln!(text, "discovery broadcast sent by the aoe driver");
        }
        KernelCommand::Interfaces(names) => {
            devices(paths)?;
            if names.is_empty() {
                let list = attribute(&paths.module.join("parameters"), "aoe_iflist");
                let _ = writeln!(
                    text,
                    "{}",
                    if list.is_empty() {
                        "all interfaces (aoe_iflist is empty)"
                    } else {
                        &list
                    }
                );
            } else {
                command(paths, "interfaces", &names.join(" "))?;
                let _ = writeln!(text, "the aoe driver now uses: {}", names.join(" "));
            }
        }
    }
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// The interfaces AoE can run on, by name: up, Ethernet (`type` 1), not loopback.
pub fn aoe_capable_interfaces(sys_class_net: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(sys_class_net) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_owned();
            let dir = entry.path();
            let ethernet = attribute(&dir, "type") == "1";
            let flags = attribute(&dir, "flags");
            let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).unwrap_or(0);
            let up = flags & 1 != 0;
            let loopback = flags & 8 != 0;
            (ethernet && up && !loopback).then_some(name)
        })
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod test {
    use super::*;
    use aoe_testkit::scratch::Scratch;

    /// A fake sysfs and /dev/etherd with two devices; the driver files are plain files, so
    /// what a command wrote can be read back.
    fn fake_driver(scratch: &Scratch) -> KernelPaths {
        let paths = KernelPaths::under(&scratch.dir);
        std::fs::create_dir_all(paths.module.join("parameters")).unwrap();
        std::fs::write(paths.module.join("parameters/aoe_iflist"), "\n").unwrap();
        std::fs::create_dir_all(&paths.dev).unwrap();
        for file in ["flush", "revalidate", "discover", "interfaces"] {
            std::fs::write(paths.dev.join(file), "").unwrap();
        }
        for (name, size, state) in [
            ("e10.1", "1048576", "up"),
            ("e2.7", "65536", "down,closewait"),
        ] {
            let dir = paths.sys_block.join(format!("etherd!{name}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("size"), format!("{size}\n")).unwrap();
            std::fs::write(dir.join("state"), format!("{state}\n")).unwrap();
            std::fs::write(dir.join("netif"), "eth0\n").unwrap();
            std::fs::write(dir.join("payload"), "8704\n").unwrap();
            std::fs::write(dir.join("firmware-version"), "0x4019\n").unwrap();
            std::fs::write(dir.join("mac"), "525400a0e001\n").unwrap();
        }
        std::fs::create_dir_all(paths.sys_block.join("sda")).unwrap();
        paths
    }

    fn run_text(paths: &KernelPaths, what: KernelCommand, json: bool) -> Result<String, Error> {
        let mut out = Vec::new();
        run(paths, &what, json, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn stat_lists_the_drivers_devices_from_sysfs() {
        let scratch = Scratch::new("kstat");
        let paths = fake_driver(&scratch);
        let text = run_text(&paths, KernelCommand::Stat, false).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[1].starts_with("e2.7 "), "sorted by shelf: {text}");
        assert!(lines[1].contains("down,closewait") && lines[1].contains("32.0 MiB"));
        assert!(lines[2].starts_with("e10.1 ") && lines[2].contains("512.0 MiB"));
        assert!(lines[2].contains("eth0") && lines[2].contains("8704"));
        assert!(lines[2].contains("0x4019") && lines[2].contains("525400a0e001"));
        let json = run_text(&paths, KernelCommand::Stat, true).unwrap();
        assert!(
            json.starts_with("[{\"device\":\"e2.7\",\"sectors\":65536,\"bytes\":33554432,")
                && json.contains("\"state\":\"up\",\"interface\":\"eth0\""),
            "{json}"
        );
    }

    #[test]
    fn commands_write_the_drivers_syntax_to_its_files() {
        let scratch = Scratch::new("kcmd");
        let paths = fake_driver(&scratch);
        let written = |file: &str| std::fs::read_to_string(paths.dev.join(file)).unwrap();
        run_text(
            &paths,
            KernelCommand::Flush {
                all: true,
                devices: vec![],
            },
            false,
        )
        .unwrap();
        assert_eq!(written("flush"), "all");
        run_text(
            &paths,
            KernelCommand::Revalidate(vec!["e2.7".into()]),
            false,
        )
        .unwrap();
        assert_eq!(written("revalidate"), "e2.7");
        run_text(&paths, KernelCommand::Discover, false).unwrap();
        assert_eq!(written("discover"), "1");
        let text = run_text(&paths, KernelCommand::Interfaces(vec![]), false).unwrap();
        assert!(text.contains("all interfaces"), "{text}");
        run_text(
            &paths,
            KernelCommand::Interfaces(vec!["eth0".into(), "eth1".into()]),
            false,
        )
        .unwrap();
        assert_eq!(written("interfaces"), "eth0 eth1");
        // A device the driver does not have is refused before anything is written.
        std::fs::write(paths.dev.join("flush"), "").unwrap();
        let err = run_text(
            &paths,
            KernelCommand::Flush {
                all: false,
                devices: vec!["e9.9".into()],
            },
            false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("no device e9.9"), "{err}");
        assert_eq!(written("flush"), "");
        // The fake driver removes nothing: a named device it keeps is reported as kept.
        let err = run_text(
            &paths,
            KernelCommand::Flush {
                all: false,
                devices: vec!["e10.1".into()],
            },
            false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("kept e10.1"), "{err}");
        assert_eq!(written("flush"), "e10.1");
    }

    #[test]
    fn a_missing_driver_is_named() {
        let scratch = Scratch::new("knone");
        let paths = KernelPaths::under(&scratch.dir);
        let err = run_text(&paths, KernelCommand::Stat, false).unwrap_err();
        assert!(err.to_string().contains("modprobe aoe"), "{err}");
    }

    #[test]
    fn aoe_capable_interfaces_are_up_ethernet_and_not_loopback() {
        let scratch = Scratch::new("kif");
        let net = scratch.dir.join("net");
        for (name, kind, flags) in [
            ("lo", "772", "0x9"),
            ("eth0", "1", "0x1003"),
            ("eth1", "1", "0x1002"),
            ("wg0", "65534", "0x91"),
            ("br0", "1", "0x1003"),
        ] {
            std::fs::create_dir_all(net.join(name)).unwrap();
            std::fs::write(net.join(name).join("type"), format!("{kind}\n")).unwrap();
            std::fs::write(net.join(name).join("flags"), format!("{flags}\n")).unwrap();
        }
        assert_eq!(aoe_capable_interfaces(&net), ["br0", "eth0"]);
    }
}
