//! What `aoe` prints: text for people, `--json` for scripts.

use super::Cli;
use crate::control::{IdentifyInfo, Session, TargetInfo};
use aoe_core::wire::EthernetAddress;
use std::fmt::Write as _;

/// A MAC in the project's one text form (`aoe_net::MacText`): `02:00:00:00:00:01`.
pub fn mac_text(mac: EthernetAddress) -> String {
    aoe_net::MacText(mac).to_string()
}

/// A JSON string literal.
pub(super) fn json_string(text: &str) -> String {
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

pub(super) fn size_text(sectors: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let bytes = (sectors * 512) as f64;
    if bytes >= (1u64 << 30) as f64 {
        format!("{:.1} GiB", bytes / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", bytes / (1u64 << 20) as f64)
    }
}

/// A target as JSON; `spf` is the sectors per frame on our port.
pub(super) fn info_json(info: &TargetInfo, identity: Option<&IdentifyInfo>, spf: u8) -> String {
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

pub(super) fn show_identify(cli: &Cli, session: &Session) -> String {
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

pub(super) fn show_config(cli: &Cli, info: &TargetInfo) -> String {
    let string = String::from_utf8_lossy(&info.config_string);
    if cli.json {
        format!("{{\"config\":{}}}\n", json_string(&string))
    } else {
        format!("{string}\n")
    }
}

pub(super) fn show_macs(cli: &Cli, what: &str, macs: &[EthernetAddress]) -> String {
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
