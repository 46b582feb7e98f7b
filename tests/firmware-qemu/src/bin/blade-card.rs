//! `blade-card`: show or set the blade's identity in a card's (or image's) reserved region.
//!
//! ```sh
//! blade-card show sd.img
//! blade-card set sd.img --shelf 7 --slot 3 [--mac 02:00:00:ae:00:07]   # or /dev/sdX
//! blade-card set sd.img --default-mac --default-address               # back to build-time defaults
//! ```
//!
//! The region is the last 8 sectors (`firmware/README.md`). `set` keeps the AoE state (config
//! string, mask, reservations) of the newest valid record and writes the older copy with the
//! next sequence number, then syncs, exactly as the firmware saves; a blank card gets a first
//! record. Exit status: 0 done, 1 I/O error, 2 bad command line.

use aoe_firmware::persist::{COPY_LEN, Identity, RESERVED_SECTORS, Record, encode_parts};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::process::ExitCode;

const SECTOR: u64 = 512;
const USAGE: &str = "usage: blade-card show IMAGE\n       blade-card set IMAGE [--shelf N --slot N | --default-address] [--mac MAC | --default-mac]";

/// The newest valid record and which copy holds it.
struct Newest {
    copy: u64,
    sequence: u32,
    record: Record,
}

fn region_start(file: &mut File) -> Result<u64, String> {
    let size = file.seek(SeekFrom::End(0)).map_err(|e| e.to_string())?;
    let sectors = size / SECTOR;
    if sectors <= RESERVED_SECTORS {
        return Err(format!(
            "{size} bytes: too small to hold the reserved region"
        ));
    }
    Ok((sectors - RESERVED_SECTORS) * SECTOR)
}

fn read_newest(file: &mut File, start: u64) -> Result<Option<Newest>, String> {
    let mut newest: Option<Newest> = None;
    for copy in 0..2u64 {
        let mut bytes = [0u8; COPY_LEN];
        file.seek(SeekFrom::Start(start + copy * COPY_LEN as u64))
            .and_then(|_| file.read_exact(&mut bytes))
            .map_err(|e| e.to_string())?;
        if let Some((record, sequence)) = Record::decode(&bytes)
            && newest.as_ref().is_none_or(|n| sequence > n.sequence)
        {
            newest = Some(Newest {
                copy,
                sequence,
                record,
            });
        }
    }
    Ok(newest)
}

fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let octets: Vec<u8> = text
        .split(':')
        .map(|part| u8::from_str_radix(part, 16))
        .collect::<Result<_, _>>()
        .map_err(|_| format!("not a MAC address: {text}"))?;
    let mac: [u8; 6] = octets
        .try_into()
        .map_err(|_| format!("not a MAC address: {text}"))?;
    if mac[0] & 1 != 0 || mac == [0; 6] {
        return Err(format!("{text} is not a unicast address"));
    }
    Ok(mac)
}

fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|octet| format!("{octet:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn show(path: &str) -> Result<(), String> {
    let mut file = File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let start = region_start(&mut file)?;
    let Some(newest) = read_newest(&mut file, start)? else {
        println!("no record: the blade uses its build-time defaults");
        return Ok(());
    };
    let record = &newest.record;
    let copy = if newest.copy == 0 { "A" } else { "B" };
    println!("record {} in copy {copy}", newest.sequence);
    match record.identity.mac {
        Some(mac) => println!("mac      {}", format_mac(&mac)),
        None => println!("mac      (factory default)"),
    }
    match record.identity.address {
        Some((shelf, slot)) => println!("address  e{shelf}.{slot}"),
        None => println!("address  (build-time default)"),
    }
    println!(
        "config   {:?}",
        String::from_utf8_lossy(&record.config_string)
    );
    for (name, list) in [("mask", &record.mask), ("reserve", &record.reservations)] {
        let macs: Vec<String> = list.iter().map(|mac| format_mac(&mac.0)).collect();
        println!("{name:<8} [{}]", macs.join(", "));
    }
    Ok(())
}

fn set(path: &str, args: &[String]) -> Result<(), String> {
    let mut shelf = None;
    let mut slot = None;
    let mut mac = None;
    let mut default_mac = false;
    let mut default_address = false;
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--shelf" => {
                let text = value()?;
                shelf = Some(
                    text.parse::<u16>()
                        .ok()
                        .filter(|s| *s != 0xFFFF && *s != 0x0FFF)
                        .ok_or(format!("--shelf {text}: 0 to 65534, not 4095"))?,
                );
            }
            "--slot" => {
                let text = value()?;
                slot = Some(
                    text.parse::<u8>()
                        .ok()
                        .filter(|s| *s != 0xFF)
                        .ok_or(format!("--slot {text}: 0 to 254"))?,
                );
            }
            "--mac" => mac = Some(parse_mac(value()?)?),
            "--default-mac" => default_mac = true,
            "--default-address" => default_address = true,
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if shelf.is_some() != slot.is_some() {
        return Err("--shelf and --slot go together".into());
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("{path}: {e}"))?;
    let start = region_start(&mut file)?;
    let newest = read_newest(&mut file, start)?;
    let (copy, sequence, mut record) = match newest {
        Some(n) => (1 - n.copy, n.sequence.wrapping_add(1), n.record),
        None => (0, 1, Record::default()),
    };
    let mut identity: Identity = record.identity;
    if let (Some(shelf), Some(slot)) = (shelf, slot) {
        identity.address = Some((shelf, slot));
    }
    if default_address {
        identity.address = None;
    }
    if let Some(mac) = mac {
        identity.mac = Some(mac);
    }
    if default_mac {
        identity.mac = None;
    }
    record.identity = identity;
    let mut bytes = [0u8; COPY_LEN];
    encode_parts(
        &record.identity,
        &record.config_string,
        &record.mask,
        &record.reservations,
        sequence,
        &mut bytes,
    );
    file.seek(SeekFrom::Start(start + copy * COPY_LEN as u64))
        .and_then(|_| file.write_all(&bytes))
        .and_then(|_| file.sync_all())
        .map_err(|e| format!("{path}: {e}"))?;
    println!("record {sequence} written");
    show(path)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [command, path] if command == "show" => show(path),
        [command, path, rest @ ..] if command == "set" => set(path, rest),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("blade-card: {message}");
            ExitCode::FAILURE
        }
    }
}
