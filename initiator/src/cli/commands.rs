//! The `aoe` commands that move data or look around: discover, read, write, verify, bench.

use super::Cli;
use super::output::{info_json, mac_text, size_text};
use crate::control::{self, Retry, Session};
use crate::engine::{Engine, EngineConfig, MAX_WINDOW, Op};
use crate::frame::Address;
use crate::work::{self, Access, BenchResult, BenchSpec, PatternCheck, Transfer};
use crate::writelog::{self, WriteLog, WriteLogSpec};
use crate::{Error, Transport};
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

pub(super) fn discover<L: Transport + ?Sized>(
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
                let spf = crate::sectors_per_frame(mtu, info.sector_count).unwrap_or(0);
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
            let spf = crate::sectors_per_frame(mtu, info.sector_count).unwrap_or(0);
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

pub(super) fn read<L: Transport + ?Sized>(
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

pub(super) fn write<L: Transport + ?Sized>(
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
