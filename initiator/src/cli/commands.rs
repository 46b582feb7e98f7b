//! The `aoe` commands that move data or look around: discover, read, write, verify, bench.

use super::Cli;
use super::output::{info_json, mac_text, size_text};
use crate::control::{self, IdentifyInfo, Retry, Session, TargetInfo};
use crate::engine::{Engine, EngineConfig, MAX_WINDOW, Op};
use crate::frame::Address;
use crate::work::{self, Access, BenchResult, BenchSpec, PatternCheck, Transfer};
use crate::writelog::{self, WriteLog, WriteLogSpec};
use crate::{Error, Transport};
use aoe_core::wire::cfg::ConfigCommand;
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, Instant};

/// A target one port found: the port, its Query Config answer and, if it answered, IDENTIFY.
pub(super) struct Seen {
    /// The interface it answered on.
    pub interface: String,
    /// Its first answer.
    pub info: TargetInfo,
    /// The most answers one request got from its MAC for its shelf.slot.
    pub answers_per_request: u32,
    /// Its IDENTIFY answer.
    pub identity: Option<IdentifyInfo>,
    /// The port's MTU.
    pub mtu: usize,
}

/// Discovers the targets on one port (all, or `-t`'s shelf.slot) and identifies each.
pub(super) fn discover_port<L: Transport + ?Sized>(
    cli: &Cli,
    interface: &str,
    link: &mut L,
    retry: Retry,
) -> Result<Vec<Seen>, Error> {
    let mut to = Address::EVERYONE;
    if let Some((shelf, slot)) = cli.target {
        to.shelf = shelf;
        to.slot = slot;
    }
    let answers = control::collect_answers(link, to, ConfigCommand::Read, b"", cli.wait)?;
    let mtu = link.mtu();
    let mut seen = Vec::new();
    for answer in answers {
        let identity = control::identify(link, answer.info.address(), retry).ok();
        seen.push(Seen {
            interface: interface.to_owned(),
            info: answer.info,
            answers_per_request: answer.answers_per_request,
            identity,
            mtu,
        });
    }
    Ok(seen)
}

/// Why a row is in conflict, if it is: its shelf.slot is answered from more than one MAC, or
/// one MAC answered one request twice (two targets behind one MAC: two processes on one host).
fn conflict_of(row: &Seen, all: &[Seen]) -> Option<String> {
    let same: Vec<&Seen> = all
        .iter()
        .filter(|s| (s.info.shelf, s.info.slot) == (row.info.shelf, row.info.slot))
        .collect();
    let mut macs: Vec<[u8; 6]> = same.iter().map(|s| s.info.mac.0).collect();
    macs.sort_unstable();
    macs.dedup();
    if row.answers_per_request > 1 {
        return Some(format!(
            "{} answers from {} to one request: two targets share this MAC",
            row.answers_per_request,
            mac_text(row.info.mac)
        ));
    }
    if macs.len() > 1 {
        let serials: Vec<Option<&str>> = same
            .iter()
            .map(|s| s.identity.as_ref().map(|id| id.serial.as_str()))
            .collect();
        let one_serial = serials
            .iter()
            .all(|serial| serial.is_some() && *serial == serials[0]);
        let note = if one_serial {
            " (same IDENTIFY serial: one target with several ports, or two exports of one host)"
        } else {
            ""
        };
        return Some(format!("answered from {} MACs{note}", macs.len()));
    }
    None
}

pub(super) fn discover(
    cli: &Cli,
    mut rows: Vec<Seen>,
    out: &mut dyn std::io::Write,
) -> Result<(), Error> {
    rows.sort_by(|a, b| {
        (a.info.shelf, a.info.slot, a.info.mac.0, &a.interface).cmp(&(
            b.info.shelf,
            b.info.slot,
            b.info.mac.0,
            &b.interface,
        ))
    });
    let conflicts: Vec<Option<String>> = rows.iter().map(|row| conflict_of(row, &rows)).collect();
    let mut text = String::new();
    if cli.json {
        let items: Vec<String> = rows
            .iter()
            .zip(&conflicts)
            .map(|(row, conflict)| {
                let spf = crate::sectors_per_frame(row.mtu, row.info.sector_count).unwrap_or(0);
                let mut json = info_json(&row.info, row.identity.as_ref(), spf);
                json.pop();
                let _ = write!(
                    json,
                    ",\"interface\":{},\"conflict\":{}}}",
                    super::output::json_string(&row.interface),
                    match conflict {
                        Some(why) => super::output::json_string(why),
                        None => "false".to_string(),
                    }
                );
                json
            })
            .collect();
        let _ = writeln!(text, "[{}]", items.join(","));
    } else if !rows.is_empty() {
        let _ = writeln!(
            text,
            "{:<8} {:<17} {:<10} {:>10} {:>12} {:>6} {:>4} {:>7}  config",
            "target", "mac", "interface", "size", "sectors", "bufcnt", "spf", "fw"
        );
        for (row, conflict) in rows.iter().zip(&conflicts) {
            let spf = crate::sectors_per_frame(row.mtu, row.info.sector_count).unwrap_or(0);
            let (size, sectors) = match &row.identity {
                Some(id) => (size_text(id.sectors), id.sectors.to_string()),
                None => ("?".to_string(), "?".to_string()),
            };
            let _ = writeln!(
                text,
                "{:<8} {:<17} {:<10} {:>10} {:>12} {:>6} {:>4} {:>#7x}  {:?}{}",
                format!("e{}.{}", row.info.shelf, row.info.slot),
                mac_text(row.info.mac),
                row.interface,
                size,
                sectors,
                row.info.buffer_count,
                spf,
                row.info.firmware_version,
                String::from_utf8_lossy(&row.info.config_string),
                if conflict.is_some() { "  CONFLICT" } else { "" }
            );
        }
    }
    out.write_all(text.as_bytes())?;
    let mut warned = Vec::new();
    for (row, conflict) in rows.iter().zip(&conflicts) {
        let name = format!("e{}.{}", row.info.shelf, row.info.slot);
        if let Some(why) = conflict
            && !warned.contains(&name)
        {
            eprintln!(
                "aoe: CONFLICT: {name} {why}; initiators would mix their data (each target \
                 must have its own shelf.slot)"
            );
            warned.push(name);
        }
    }
    if rows.is_empty() {
        return Err(Error::NoAnswer {
            what: "discovery".to_string(),
            waited: cli.wait,
        });
    }
    Ok(())
}

/// `config test|prefix STRING`: the targets (all, or `-t`) whose config string matches.
pub(super) fn config_match<L: Transport + ?Sized>(
    cli: &Cli,
    link: &mut L,
    command: ConfigCommand,
    string: &str,
    out: &mut dyn std::io::Write,
) -> Result<(), Error> {
    let mut to = Address::EVERYONE;
    if let Some((shelf, slot)) = cli.target {
        to.shelf = shelf;
        to.slot = slot;
    }
    let answers = control::collect_answers(link, to, command, string.as_bytes(), cli.wait)?;
    let mut text = String::new();
    if cli.json {
        let items: Vec<String> = answers
            .iter()
            .map(|answer| {
                format!(
                    "{{\"target\":\"e{}.{}\",\"mac\":\"{}\",\"config\":{}}}",
                    answer.info.shelf,
                    answer.info.slot,
                    mac_text(answer.info.mac),
                    super::output::json_string(&String::from_utf8_lossy(
                        &answer.info.config_string
                    ))
                )
            })
            .collect();
        let _ = writeln!(text, "[{}]", items.join(","));
    } else {
        for answer in &answers {
            let _ = writeln!(
                text,
                "e{}.{} {} {:?}",
                answer.info.shelf,
                answer.info.slot,
                mac_text(answer.info.mac),
                String::from_utf8_lossy(&answer.info.config_string)
            );
        }
    }
    out.write_all(text.as_bytes())?;
    if answers.is_empty() {
        let how = if command == ConfigCommand::Test {
            "is"
        } else {
            "starts with"
        };
        return Err(Error::Invalid(format!(
            "no target whose config string {how} {string:?} answered within {:.1} s",
            cli.wait.as_secs_f64()
        )));
    }
    Ok(())
}

/// `ping`: Query Config round trips (like aoeping) and, with `--smart`, SMART RETURN STATUS.
pub(super) fn ping<L: Transport + ?Sized>(
    cli: &Cli,
    link: &mut L,
    session: &Session,
    retry: Retry,
) -> Result<String, Error> {
    let to = session.address();
    let count = cli.count.unwrap_or(3).max(1);
    let mut rtts = Vec::new();
    let mut text = String::new();
    for _ in 0..count {
        let sent = link.now();
        match control::query_config(link, to, ConfigCommand::Read, b"", retry) {
            Ok(_) => {
                let rtt = link.now().saturating_sub(sent);
                if !cli.json {
                    let _ = writeln!(
                        text,
                        "e{}.{} at {}: reply in {:.3} ms",
                        to.shelf,
                        to.slot,
                        mac_text(to.mac),
                        rtt.as_secs_f64() * 1e3
                    );
                }
                rtts.push(rtt);
            }
            Err(Error::NoAnswer { .. }) => {
                if !cli.json {
                    let _ = writeln!(text, "e{}.{}: no answer", to.shelf, to.slot);
                }
            }
            Err(err) => return Err(err),
        }
    }
    let smart = if cli.smart {
        match control::smart_status(link, to, retry) {
            Ok(status) => Some(Ok(status)),
            Err(Error::Ata { error, .. }) if error & 0x04 != 0 => Some(Err("not supported")),
            Err(err) => return Err(err),
        }
    } else {
        None
    };
    let millis = |d: &Duration| d.as_secs_f64() * 1e3;
    let (min, max) = (
        rtts.iter().min().map_or(0.0, millis),
        rtts.iter().max().map_or(0.0, millis),
    );
    #[allow(clippy::cast_precision_loss)]
    let avg = rtts.iter().map(millis).sum::<f64>() / rtts.len().max(1) as f64;
    let smart_word = match smart {
        None => None,
        Some(Ok(control::SmartStatus::Healthy)) => Some("ok".to_string()),
        Some(Ok(control::SmartStatus::ThresholdExceeded)) => Some("threshold-exceeded".to_string()),
        Some(Ok(control::SmartStatus::Unknown([mid, high]))) => {
            Some(format!("unknown-{mid:02x}{high:02x}"))
        }
        Some(Err(why)) => Some(why.replace(' ', "-")),
    };
    if cli.json {
        let _ = writeln!(
            text,
            "{{\"target\":\"e{}.{}\",\"mac\":\"{}\",\"sent\":{count},\"answered\":{},\
             \"min_ms\":{min:.3},\"avg_ms\":{avg:.3},\"max_ms\":{max:.3}{}}}",
            to.shelf,
            to.slot,
            mac_text(to.mac),
            rtts.len(),
            smart_word
                .as_ref()
                .map(|word| format!(",\"smart\":\"{word}\""))
                .unwrap_or_default()
        );
    } else {
        let _ = writeln!(
            text,
            "{count} sent, {} answered; round trip min/avg/max {min:.3}/{avg:.3}/{max:.3} ms",
            rtts.len()
        );
        match &smart {
            None => {}
            Some(Ok(control::SmartStatus::Healthy)) => {
                let _ = writeln!(text, "SMART: ok (no threshold exceeded)");
            }
            Some(Ok(control::SmartStatus::ThresholdExceeded)) => {
                let _ = writeln!(
                    text,
                    "SMART: THRESHOLD EXCEEDED (the device predicts its failure)"
                );
            }
            Some(Ok(control::SmartStatus::Unknown([mid, high]))) => {
                let _ = writeln!(text, "SMART: unknown status {mid:#04x}/{high:#04x}");
            }
            Some(Err(why)) => {
                let _ = writeln!(text, "SMART: {why} by the target (ATA ABRT)");
            }
        }
    }
    if rtts.is_empty() {
        return Err(Error::NoAnswer {
            what: format!("{count} Query Config pings"),
            waited: retry.give_up,
        });
    }
    if let Some(Ok(control::SmartStatus::ThresholdExceeded)) = smart {
        return Err(Error::Invalid(format!(
            "{}e{}.{}: SMART threshold exceeded",
            text, to.shelf, to.slot
        )));
    }
    Ok(text)
}

fn engine_for<L: Transport + ?Sized>(
    cli: &Cli,
    link: &L,
    session: &Session,
) -> Result<Engine, Error> {
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

/// The path `-`: standard input or output.
fn is_stdio(path: &std::path::Path) -> bool {
    path.as_os_str() == "-"
}

pub(super) fn read<L: Transport + ?Sized>(
    cli: &Cli,
    link: &mut L,
    session: &Session,
    path: &std::path::Path,
    stdout: &mut dyn std::io::Write,
) -> Result<String, Error> {
    let (lba, count) = range(cli, session, None)?;
    let mut engine = engine_for(cli, link, session)?;
    let mut file = if is_stdio(path) {
        None
    } else {
        Some(std::fs::File::create(path).map_err(|e| file_error(path, "create", &e))?)
    };
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
        match &mut file {
            Some(file) => file.write_all(chunk),
            None => stdout.write_all(chunk),
        }
        .map_err(|e| file_error(path, "write", &e))?;
        done += n;
    }
    let summary = summary(cli, "read", &engine, count, count, start.elapsed(), "");
    let Some(file) = file else {
        stdout.flush().map_err(|e| file_error(path, "write", &e))?;
        // The data went to standard output: the summary goes to standard error.
        eprint!("{summary}");
        return Ok(String::new());
    };
    // Only what keeps data (a file, a block device) is synced: /dev/null and pipes cannot be.
    let kind = file
        .metadata()
        .map_err(|e| file_error(path, "stat", &e))?
        .file_type();
    if kind.is_file() || std::os::unix::fs::FileTypeExt::is_block_device(&kind) {
        file.sync_all().map_err(|e| file_error(path, "sync", &e))?;
    }
    Ok(summary)
}

/// One line on what a transfer moved; `json_extra` adds fields (`,"key":value...`) to the
/// JSON form.
///
/// `sectors` is the range the command covered; `moved` the sectors that crossed the network
/// (twice the range for a pattern verify: written, then read back), which the rate is of.
fn summary(
    cli: &Cli,
    what: &str,
    engine: &Engine,
    sectors: u64,
    moved: u64,
    elapsed: Duration,
    json_extra: &str,
) -> String {
    let stats = engine.stats();
    if cli.json {
        format!(
            "{{\"op\":\"{what}\",\"sectors\":{sectors},\"moved_sectors\":{moved},\
             \"seconds\":{:.6},\"frames\":{},\"retransmits\":{}{json_extra}}}\n",
            elapsed.as_secs_f64(),
            stats.sent,
            stats.retransmits
        )
    } else if moved == sectors {
        format!(
            "{what}: {}; {} frames, {} retransmitted\n",
            rate(sectors, elapsed),
            stats.sent,
            stats.retransmits
        )
    } else {
        format!(
            "{what}: {sectors} sectors, {}; {} frames, {} retransmitted\n",
            rate(moved, elapsed).replacen("sectors", "sectors moved", 1),
            stats.sent,
            stats.retransmits
        )
    }
}

pub(super) fn write<L: Transport + ?Sized>(
    cli: &Cli,
    link: &mut L,
    session: &Session,
    path: &std::path::Path,
) -> Result<String, Error> {
    let stdin = is_stdio(path);
    let mut input: Box<dyn std::io::Read> = if stdin {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(path).map_err(|e| file_error(path, "open", &e))?)
    };
    // A file's size gives the default count; standard input is written until it ends.
    let file_sectors = if stdin {
        None
    } else {
        let len = std::fs::metadata(path)
            .map_err(|e| file_error(path, "stat", &e))?
            .len();
        if len == 0 {
            return Err(Error::Invalid(format!("{} is empty", path.display())));
        }
        Some(len.div_ceil(512))
    };
    let until_eof = stdin && cli.count.is_none();
    let (lba, count) = if until_eof {
        let capacity = session.identity.sectors;
        if cli.lba >= capacity {
            return Err(Error::Invalid(format!(
                "--lba {} is beyond the target's {capacity} sectors",
                cli.lba
            )));
        }
        (cli.lba, capacity - cli.lba)
    } else {
        range(cli, session, file_sectors)?
    };
    let mut engine = engine_for(cli, link, session)?;
    let mut buf = vec![0u8; usize::try_from(CHUNK_SECTORS.min(count) * 512).unwrap_or(0)];
    let start = Instant::now();
    let mut done = 0;
    while done < count {
        let n = (count - done).min(CHUNK_SECTORS);
        let chunk = &mut buf[..usize::try_from(n * 512).unwrap_or(0)];
        let filled = read_full(&mut input, chunk).map_err(|e| file_error(path, "read", &e))?;
        if filled == 0 && until_eof {
            break;
        }
        chunk[filled..].fill(0);
        // Until EOF, a short read is the end: write only the sectors it filled.
        let n = if until_eof && filled < chunk.len() {
            (filled as u64).div_ceil(512)
        } else {
            n
        };
        let chunk = &chunk[..usize::try_from(n * 512).unwrap_or(0)];
        engine.run(
            link,
            &mut Transfer::write(lba + done, chunk, engine.config().sectors_per_frame),
        )?;
        done += n;
        if until_eof && n * 512 > filled as u64 {
            break;
        }
    }
    if until_eof && done == count {
        let mut probe = [0u8; 1];
        if read_full(&mut input, &mut probe).map_err(|e| file_error(path, "read", &e))? > 0 {
            return Err(Error::Invalid(format!(
                "standard input is longer than the target's {count} sectors from LBA {lba}; \
                 the first {count} were written"
            )));
        }
    }
    if done == 0 {
        return Err(Error::Invalid("standard input is empty".to_string()));
    }
    flush(link, session, cli)?;
    Ok(summary(
        cli,
        "write",
        &engine,
        done,
        done,
        start.elapsed(),
        "",
    ))
}

/// Flushes the target's write cache, saying on stderr when it cannot. It runs between I/O
/// runs, so it waits as long as a frame may (`--timeout`), not the short first-contact limit.
fn flush<L: Transport + ?Sized>(link: &mut L, session: &Session, cli: &Cli) -> Result<(), Error> {
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

/// Reads until `buf` is full or the input ends; returns the octets read.
fn read_full(file: &mut dyn std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
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

pub(super) fn verify<L: Transport + ?Sized>(
    cli: &Cli,
    link: &mut L,
    session: &Session,
) -> Result<String, Error> {
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
        Ok(summary(
            cli,
            "verify",
            &engine,
            count,
            2 * count,
            elapsed,
            &extra,
        ))
    } else {
        Ok(format!(
            "verify: wrote and read back sectors {lba}..{} with pattern seed {seed}: all match\n{}",
            lba + count,
            summary(cli, "verify", &engine, count, 2 * count, elapsed, "")
        ))
    }
}

pub(super) fn bench<L: Transport + ?Sized>(
    cli: &Cli,
    link: &mut L,
    session: &Session,
) -> Result<String, Error> {
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

pub(super) fn write_log<L: Transport + ?Sized>(
    cli: &Cli,
    link: &mut L,
    session: &Session,
) -> Result<String, Error> {
    let advertised = usize::from(session.info.buffer_count).clamp(1, MAX_WINDOW);
    let window = cli.window.unwrap_or(advertised).min(cli.qd);
    let mut config = EngineConfig::new(window, session.sectors_per_frame);
    config.give_up = cli.timeout;
    let mut engine = Engine::new(link.mac(), link.mtu(), session.address(), config)?;
    let frame = u64::from(session.sectors_per_frame) * 512;
    let bs = cli.bs.unwrap_or(frame);
    if bs > frame {
        return Err(Error::Invalid(format!(
            "--bs {bs}: a write-log write is at most one frame ({frame} bytes here)"
        )));
    }
    let (lba, count) = range(cli, session, None)?;
    let spec = WriteLogSpec {
        seed: cli.seed.unwrap_or(1),
        lba,
        count,
        sectors: u8::try_from(bs / 512).unwrap_or(1),
        duration: Some(cli.seconds),
        max_writes: cli.requests,
    };
    let mut file;
    let mut stdout;
    let log: &mut dyn std::io::Write = match &cli.log {
        Some(path) => {
            file = std::fs::File::create(path).map_err(|e| file_error(path, "create", &e))?;
            &mut file
        }
        None => {
            stdout = std::io::stdout().lock();
            &mut stdout
        }
    };
    let start = Instant::now();
    let mut work = WriteLog::new(spec, log)?;
    let result = engine.run(link, &mut work);
    let (issued, acked) = (work.issued(), work.acked());
    eprintln!(
        "aoe write-log: {issued} writes issued, {acked} acknowledged in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    result?;
    Ok(String::new())
}

pub(super) fn check_log(cli: &Cli, image: &std::path::Path) -> Result<String, Error> {
    let Some(log_path) = &cli.log else {
        return Err(Error::Invalid("check-log needs --log FILE".to_string()));
    };
    let log = std::fs::read_to_string(log_path).map_err(|e| file_error(log_path, "read", &e))?;
    let data = std::fs::read(image).map_err(|e| file_error(image, "read", &e))?;
    let report = writelog::check(&log, &data)?;
    let text = format!("check-log {}: {}\n", image.display(), report.summary());
    if report.lost.is_empty() {
        Ok(text)
    } else {
        print!("{text}");
        Err(Error::Invalid(format!(
            "{} acknowledged writes are not in {}",
            report.lost.len(),
            image.display()
        )))
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use aoe_core::wire::EthernetAddress;

    fn row(interface: &str, mac: u8, slot: u8, repeated: u32, serial: &str) -> Seen {
        Seen {
            interface: interface.to_owned(),
            info: TargetInfo {
                mac: EthernetAddress([2, 0, 0, 0, 0, mac]),
                shelf: 1,
                slot,
                buffer_count: 16,
                firmware_version: 1,
                sector_count: 2,
                aoe_version: 1,
                config_string: Vec::new(),
            },
            answers_per_request: repeated,
            identity: Some(IdentifyInfo {
                sectors: 2048,
                lba48: true,
                model: "m".into(),
                serial: serial.into(),
                firmware: "f".into(),
                flush: true,
                flush_ext: true,
            }),
            mtu: 1500,
        }
    }

    fn cli(json: bool) -> Cli {
        let mut cli = Cli::parse(["discover".to_string()]).unwrap();
        cli.json = json;
        cli
    }

    #[test]
    fn duplicate_shelf_slots_are_listed_as_conflicts() {
        // e1.0 from two MACs with different serials; e1.1 twice from one MAC; e1.2 alone, seen
        // on two of our interfaces (one target, one MAC: no conflict).
        let rows = || {
            vec![
                row("eth0", 1, 0, 1, "1.0:alpha"),
                row("eth0", 2, 0, 1, "1.0:beta"),
                row("eth0", 3, 1, 2, "1.1:alpha"),
                row("eth0", 4, 2, 1, "1.2:alpha"),
                row("eth1", 4, 2, 1, "1.2:alpha"),
            ]
        };
        let all = rows();
        let conflicts: Vec<Option<String>> = all.iter().map(|r| conflict_of(r, &all)).collect();
        assert_eq!(
            conflicts[0].as_deref(),
            Some("answered from 2 MACs"),
            "{conflicts:?}"
        );
        assert!(conflicts[1].is_some());
        assert_eq!(
            conflicts[2].as_deref(),
            Some("2 answers from 02:00:00:00:00:03 to one request: two targets share this MAC")
        );
        assert_eq!((&conflicts[3], &conflicts[4]), (&None, &None));
        let mut out = Vec::new();
        discover(&cli(false), rows(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let flagged: Vec<&str> = text
            .lines()
            .filter(|l| l.ends_with("CONFLICT"))
            .map(|l| &l[..4])
            .collect();
        assert_eq!(flagged, ["e1.0", "e1.0", "e1.1"], "{text}");
        assert!(text.contains(" eth1 "), "{text}");
        let mut out = Vec::new();
        discover(&cli(true), rows(), &mut out).unwrap();
        let json = String::from_utf8(out).unwrap();
        assert_eq!(json.matches("\"conflict\":false").count(), 2, "{json}");
        assert!(
            json.contains("\"interface\":\"eth1\",\"conflict\":false}]"),
            "{json}"
        );
        assert!(
            json.contains("\"conflict\":\"answered from 2 MACs\""),
            "{json}"
        );
        // Two MACs with one serial: maybe one target with two ports; still flagged, with why.
        let same = vec![
            row("eth0", 1, 0, 1, "1.0:alpha"),
            row("eth0", 2, 0, 1, "1.0:alpha"),
        ];
        let note = conflict_of(&same[0], &same).unwrap();
        assert!(note.contains("same IDENTIFY serial"), "{note}");
    }
}
