//! The power-cut workload: random writes with unique content, one log line per acknowledged
//! write, and the checker that finds every logged write in a disk image afterwards.
//!
//! [`WriteLog`] writes `sectors`-sector blocks at slots drawn without repetition from a seeded
//! permutation of the region (so no two writes overlap, and the image must hold every
//! acknowledged write exactly). Each sector of write number `seq` holds [`write_sector`]'s
//! content: a header naming the log's seed, `seq` and the sector's LBA, then a pattern derived
//! from them, so a lost, stale, misplaced or torn sector never matches. The log is text:
//!
//! ```text
//! WRITE-LOG seed=7 lba=0 count=131072 sectors=8
//! ACK 0 91232 8
//! ACK 1 4400 8
//! ```
//!
//! An `ACK seq lba sectors` line is written (one `write(2)`, no buffering) as soon as the
//! target's reply to that write is accepted, so a line exists only for an acknowledged write
//! and survives the initiator being killed a moment later. [`check`] reads a log and an
//! image and counts the acknowledged writes that are present and those that are lost.
//!
//! Guarantees: [`check`] counts a write present only if every one of its sectors holds
//! exactly its content; a log line it cannot parse is an error, not a skip.

use super::Error;
use super::engine::{IoRequest, Next, Op, Workload};
use super::work::pattern_sector;
use aoe_core::SECTOR_SIZE;
use std::time::Duration;

/// The first octets of every sector a [`WriteLog`] writes.
pub const MAGIC: &[u8; 8] = b"AOEWLOG1";

/// Fills `sector` with the content of write `seq` of the log seeded `seed` at `lba`.
pub fn write_sector(seed: u64, seq: u64, lba: u64, sector: &mut [u8]) {
    pattern_sector(lba, seed ^ seq.wrapping_mul(0xD6E8_FEB8_6659_FD93), sector);
    sector[..8].copy_from_slice(MAGIC);
    sector[8..16].copy_from_slice(&seed.to_le_bytes());
    sector[16..24].copy_from_slice(&seq.to_le_bytes());
    sector[24..32].copy_from_slice(&lba.to_le_bytes());
}

/// What a [`WriteLog`] writes and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteLogSpec {
    /// Seed of the slot order and the content.
    pub seed: u64,
    /// First sector of the region.
    pub lba: u64,
    /// Sectors in the region.
    pub count: u64,
    /// Sectors per write (at most the engine's sectors per frame).
    pub sectors: u8,
    /// Stop issuing after this long (`None`: when the region is used up).
    pub duration: Option<Duration>,
    /// Stop after this many writes.
    pub max_writes: Option<u64>,
}

/// The workload; see the [module docs](self).
pub struct WriteLog<'a> {
    spec: WriteLogSpec,
    /// Slots not yet written, drawn from the end.
    slots: Vec<u64>,
    issued: u64,
    acked: u64,
    started: Option<Duration>,
    log: &'a mut dyn std::io::Write,
    line: String,
}

impl<'a> WriteLog<'a> {
    /// A write log over `spec`'s region that writes its lines to `log` (unbuffered: give it a
    /// `File` or a locked stdout, not a `BufWriter`); writes the header line now.
    ///
    /// # Errors
    /// When the region holds no whole write, or the header cannot be written.
    pub fn new(spec: WriteLogSpec, log: &'a mut dyn std::io::Write) -> Result<WriteLog<'a>, Error> {
        let slots = spec.count / u64::from(spec.sectors.max(1));
        if spec.sectors == 0 || slots == 0 {
            return Err(Error::Invalid(format!(
                "a region of {} sectors holds no write of {} sectors",
                spec.count, spec.sectors
            )));
        }
        let mut order: Vec<u64> = (0..slots).collect();
        let mut x = spec.seed | 1;
        for i in (1..order.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let j = usize::try_from(x % (i as u64 + 1)).unwrap_or(0);
            order.swap(i, j);
        }
        let header = format!(
            "WRITE-LOG seed={} lba={} count={} sectors={}\n",
            spec.seed, spec.lba, spec.count, spec.sectors
        );
        log.write_all(header.as_bytes())
            .and_then(|()| log.flush())
            .map_err(|e| Error::Invalid(format!("cannot write the log: {e}")))?;
        Ok(WriteLog {
            spec,
            slots: order,
            issued: 0,
            acked: 0,
            started: None,
            log,
            line: String::with_capacity(64),
        })
    }

    /// Writes issued so far.
    pub fn issued(&self) -> u64 {
        self.issued
    }

    /// Writes acknowledged (and logged) so far.
    pub fn acked(&self) -> u64 {
        self.acked
    }
}

impl Workload for WriteLog<'_> {
    fn next(&mut self, now: Duration) -> Next {
        let started = *self.started.get_or_insert(now);
        let timed_out = self
            .spec
            .duration
            .is_some_and(|limit| now.saturating_sub(started) >= limit);
        let enough = self.spec.max_writes.is_some_and(|max| self.issued >= max);
        if timed_out || enough {
            return Next::Done;
        }
        let Some(slot) = self.slots.pop() else {
            return Next::Done;
        };
        let seq = self.issued;
        self.issued += 1;
        Next::Issue(IoRequest {
            op: Op::Write,
            lba: self.spec.lba + slot * u64::from(self.spec.sectors),
            sectors: self.spec.sectors,
            cookie: seq,
        })
    }

    fn fill(&mut self, req: &IoRequest, data: &mut [u8]) {
        for (lba, sector) in (req.lba..).zip(data.chunks_exact_mut(SECTOR_SIZE)) {
            write_sector(self.spec.seed, req.cookie, lba, sector);
        }
    }

    fn complete(&mut self, req: &IoRequest, _data: &[u8], _at: Duration) -> Result<(), Error> {
        use std::fmt::Write as _;
        self.line.clear();
        let _ = writeln!(self.line, "ACK {} {} {}", req.cookie, req.lba, req.sectors);
        self.log
            .write_all(self.line.as_bytes())
            .and_then(|()| self.log.flush())
            .map_err(|e| Error::Invalid(format!("cannot write the log: {e}")))?;
        self.acked += 1;
        Ok(())
    }
}

/// What [`check`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckReport {
    /// Acknowledged writes in the log.
    pub acked: u64,
    /// Of those, writes whose every sector holds its content.
    pub present: u64,
    /// The others: `(seq, lba)` of each lost write, in log order.
    pub lost: Vec<(u64, u64)>,
}

impl CheckReport {
    /// One line for a person: `acked 1234, present 1234, lost 0`, with the first lost writes.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "acked {}, present {}, lost {}",
            self.acked,
            self.present,
            self.lost.len()
        );
        if !self.lost.is_empty() {
            let first: Vec<String> = self
                .lost
                .iter()
                .take(5)
                .map(|(seq, lba)| format!("#{seq} at LBA {lba}"))
                .collect();
            text.push_str(&format!(" (first: {})", first.join(", ")));
        }
        text
    }
}

fn field(line: &str, key: &str) -> Result<u64, Error> {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| Error::Invalid(format!("write log header lacks {key}=: {line:?}")))
}

/// Checks every `ACK` line of `log` (the text a [`WriteLog`] wrote) against `image`, the
/// export's sectors from sector 0 (a shorter image lacks the sectors past its end).
///
/// # Errors
/// When the log has no header or a line that is neither `ACK seq lba sectors` nor empty.
pub fn check(log: &str, image: &[u8]) -> Result<CheckReport, Error> {
    let mut lines = log.lines();
    let header = lines
        .next()
        .filter(|line| line.starts_with("WRITE-LOG "))
        .ok_or_else(|| Error::Invalid("not a write log (no WRITE-LOG header)".to_string()))?;
    let seed = field(header, "seed")?;
    let mut report = CheckReport::default();
    let mut expected = [0u8; SECTOR_SIZE];
    for line in lines {
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Option<(u64, u64, u64)> = (|| {
            let mut words = line.split_whitespace();
            if words.next()? != "ACK" {
                return None;
            }
            let seq = words.next()?.parse().ok()?;
            let lba = words.next()?.parse().ok()?;
            let sectors = words.next()?.parse().ok()?;
            words.next().is_none().then_some((seq, lba, sectors))
        })();
        let Some((seq, lba, sectors)) = parsed else {
            return Err(Error::Invalid(format!("bad write log line {line:?}")));
        };
        report.acked += 1;
        let intact = (lba..lba + sectors).all(|sector| {
            write_sector(seed, seq, sector, &mut expected);
            let start = usize::try_from(sector)
                .unwrap_or(usize::MAX)
                .saturating_mul(SECTOR_SIZE);
            image.get(start..start.saturating_add(SECTOR_SIZE)) == Some(&expected[..])
        });
        if intact {
            report.present += 1;
        } else {
            report.lost.push((seq, lba));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::control::{Retry, Session};
    use crate::engine::{Engine, EngineConfig};
    use crate::sim::{Faults, SimTransport};
    use crate::{Error, Transport};

    /// Runs a write log of `writes` writes against a simulated target with lossy, reordering
    /// delivery; returns the log text and the target's disk.
    fn run(writes: u64, sectors: u8) -> (String, Vec<u8>) {
        let mut link = SimTransport::new(7, 1, 4096, 16, 9000);
        link.set_faults(Faults {
            drop_request_every: 7,
            drop_reply_every: 11,
            duplicate_reply_every: 5,
            latency: Duration::from_micros(200),
            jitter: Duration::from_micros(400),
            seed: 3,
            ..Faults::default()
        });
        let session = Session::open(&mut link, 7, 1, Retry::default()).unwrap();
        let config = EngineConfig::new(16, session.sectors_per_frame);
        let mut engine = Engine::new(link.mac(), link.mtu(), session.address(), config).unwrap();
        let mut log = Vec::new();
        let spec = WriteLogSpec {
            seed: 42,
            lba: 100,
            count: 3000,
            sectors,
            duration: None,
            max_writes: Some(writes),
        };
        let mut work = WriteLog::new(spec, &mut log).unwrap();
        engine.run(&mut link, &mut work).unwrap();
        assert_eq!((work.issued(), work.acked()), (writes, writes));
        drop(work);
        (
            String::from_utf8(log).unwrap(),
            link.target.disk().as_bytes().to_vec(),
        )
    }

    #[test]
    fn every_acknowledged_write_is_logged_once_and_found_in_the_image() {
        let (log, image) = run(200, 4);
        let mut lines = log.lines();
        assert_eq!(
            lines.next(),
            Some("WRITE-LOG seed=42 lba=100 count=3000 sectors=4")
        );
        let acks: Vec<&str> = lines.collect();
        assert_eq!(acks.len(), 200, "one line per acknowledged write");
        let mut seqs: Vec<u64> = acks
            .iter()
            .map(|line| line.split_whitespace().nth(1).unwrap().parse().unwrap())
            .collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (0..200).collect::<Vec<_>>(), "each write once");
        let mut lbas: Vec<u64> = acks
            .iter()
            .map(|line| line.split_whitespace().nth(2).unwrap().parse().unwrap())
            .collect();
        assert!(
            lbas.iter()
                .all(|lba| (100..3100).contains(lba) && (lba - 100) % 4 == 0)
        );
        lbas.sort_unstable();
        lbas.dedup();
        assert_eq!(lbas.len(), 200, "no two writes overlap");
        let report = check(&log, &image).unwrap();
        assert_eq!(
            report,
            CheckReport {
                acked: 200,
                present: 200,
                lost: vec![]
            }
        );
        assert_eq!(report.summary(), "acked 200, present 200, lost 0");
    }

    #[test]
    fn the_checker_finds_lost_torn_and_stale_writes() {
        let (log, image) = run(50, 2);
        let ack = |k: usize| -> (u64, u64) {
            let line = log.lines().nth(1 + k).unwrap();
            let mut words = line.split_whitespace().skip(1);
            (
                words.next().unwrap().parse().unwrap(),
                words.next().unwrap().parse().unwrap(),
            )
        };
        let at = |lba: u64| usize::try_from(lba).unwrap() * SECTOR_SIZE;
        let mut damaged = image.clone();
        // Lost: zeroed (never reached the disk).
        let (seq0, lba0) = ack(0);
        damaged[at(lba0)..at(lba0) + 1024].fill(0);
        // Torn: the second sector is missing.
        let (seq1, lba1) = ack(1);
        damaged[at(lba1 + 1)..at(lba1 + 1) + 512].fill(0);
        // Stale: another write's content (another seq) in place.
        let (seq2, lba2) = ack(2);
        for sector in lba2..lba2 + 2 {
            write_sector(
                42,
                seq2 + 1000,
                sector,
                &mut damaged[at(sector)..at(sector) + 512],
            );
        }
        let report = check(&log, &damaged).unwrap();
        assert_eq!(report.acked, 50);
        assert_eq!(report.present, 47);
        assert_eq!(report.lost, vec![(seq0, lba0), (seq1, lba1), (seq2, lba2)]);
        assert!(report.summary().contains("lost 3 (first: #"));
        // An image cut short loses what lies past its end.
        let report = check(&log, &image[..at(lba0)]).unwrap();
        assert!(report.lost.contains(&(seq0, lba0)));
        // A wrong seed finds nothing.
        let other = log.replacen("seed=42", "seed=43", 1);
        assert_eq!(check(&other, &image).unwrap().present, 0);
    }

    #[test]
    fn bad_logs_are_refused() {
        assert!(matches!(check("ACK 1 2 3\n", &[]), Err(Error::Invalid(_))));
        let header = "WRITE-LOG seed=1 lba=0 count=8 sectors=1\n";
        for bad in ["ACK 1 2\n", "ACK x 2 3\n", "NACK 1 2 3\n", "ACK 1 2 3 4\n"] {
            let text = format!("{header}{bad}");
            assert!(check(&text, &[]).is_err(), "{bad:?}");
        }
        let report = check(&format!("{header}\nACK 0 0 1\n"), &[0; 512]).unwrap();
        assert_eq!((report.acked, report.present), (1, 0));
        let mut sink = Vec::new();
        let spec = WriteLogSpec {
            seed: 1,
            lba: 0,
            count: 3,
            sectors: 4,
            duration: None,
            max_writes: None,
        };
        assert!(
            WriteLog::new(spec, &mut sink).is_err(),
            "no room for one write"
        );
    }
}
