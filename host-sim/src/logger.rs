//! A small `log` backend: one line per record on stderr, with a UTC timestamp, the level and the
//! module, filtered by a level that can change at run time (a reloaded config's `log_level`).
//!
//! Own code rather than `env_logger`: we need only this line format and a settable level, and
//! `env_logger` would bring in regex and terminal-detection crates for features we do not use.
//! Lines look like
//! `2026-11-23T22:31:13.123Z INFO  host_sim::server: e1.0 on veth0: announced`.
//!
//! Under systemd, when stderr is the journal (`JOURNAL_STREAM` names stderr's device and
//! inode), lines carry no timestamp (the journal adds its own) and start with the syslog
//! priority in the `<N>` form journald reads: `<4>aoe_host_sim::worker: ...` is a warning, so
//! `journalctl -p warning` finds it.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Whether stderr is systemd's journal.
static JOURNAL: AtomicBool = AtomicBool::new(false);

/// True if `journal_stream` (the value of `JOURNAL_STREAM`, `DEVICE:INODE`) names the file
/// `stderr` is.
fn is_journal(journal_stream: &str, stderr: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    journal_stream.split_once(':').is_some_and(|(dev, ino)| {
        dev.parse() == Ok(stderr.dev()) && ino.parse() == Ok(stderr.ino())
    })
}

/// The syslog priority of a level (what `<N>` prefixes carry).
fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// One log line, in the journal's form or with a timestamp.
fn line(journal: bool, at: SystemTime, level: Level, module: &str, message: &str) -> String {
    if journal {
        format!("<{}>{module}: {message}\n", priority(level))
    } else {
        format!("{} {level:<5} {module}: {message}\n", timestamp(at))
    }
}

struct StderrLogger;

static LOGGER: StderrLogger = StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = line(
            JOURNAL.load(Ordering::Relaxed),
            SystemTime::now(),
            record.level(),
            record.module_path().unwrap_or("host-sim"),
            &record.args().to_string(),
        );
        // One write per line, so lines from several threads do not interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// Installs the logger (once; later calls only change the level) with `level`.
pub fn init(level: LevelFilter) {
    use std::os::fd::AsFd as _;
    if let Some(stream) = std::env::var_os("JOURNAL_STREAM") {
        let stderr = std::io::stderr();
        let journal = stderr
            .as_fd()
            .try_clone_to_owned()
            .map(std::fs::File::from)
            .and_then(|file| file.metadata())
            .is_ok_and(|meta| is_journal(&stream.to_string_lossy(), &meta));
        JOURNAL.store(journal, Ordering::Relaxed);
    }
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// Changes the level filter.
pub fn set_level(level: LevelFilter) {
    log::set_max_level(level);
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for `time` (UTC).
pub fn timestamp(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs();
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// Gregorian (year, month, day) of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod test {
    use super::*;
    use std::time::Duration;

    #[test]
    fn journal_lines_carry_the_priority_and_no_timestamp() {
        use std::os::unix::fs::MetadataExt as _;
        let at = UNIX_EPOCH + Duration::from_secs(1_795_473_073);
        assert_eq!(
            line(true, at, Level::Warn, "m", "disk slow"),
            "<4>m: disk slow\n"
        );
        assert_eq!(line(true, at, Level::Error, "m", "x"), "<3>m: x\n");
        assert_eq!(line(true, at, Level::Debug, "m", "x"), "<7>m: x\n");
        assert_eq!(
            line(false, at, Level::Info, "m", "up"),
            "2026-11-23T22:31:13.000Z INFO  m: up\n"
        );
        let meta = std::fs::metadata("/").unwrap();
        assert!(is_journal(&format!("{}:{}", meta.dev(), meta.ino()), &meta));
        assert!(!is_journal(
            &format!("{}:{}", meta.dev(), meta.ino() + 1),
            &meta
        ));
        assert!(!is_journal("nonsense", &meta));
    }

    #[test]
    fn timestamps_are_utc_iso8601() {
        let at = |secs: u64, millis: u64| {
            timestamp(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_795_473_073, 123), "2026-11-23T22:31:13.123Z");
        assert_eq!(at(4_107_542_399, 999), "2100-02-28T23:59:59.999Z");
    }
}
