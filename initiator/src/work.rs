//! Workloads for the [`Engine`]: sector ranges to or from memory, pattern write and check,
//! and the benchmark.
//!
//! Each splits its sectors into frames of at most the engine's sectors per frame. None
//! allocates per frame: data is copied between the caller's buffer (or a computed pattern)
//! and the frame, and latencies go into a fixed-size histogram.

use super::Error;
use super::engine::{Engine, IoRequest, Next, Op, Workload};
use std::time::Duration;

/// Sectors `start..start + count` moved between the target and a memory buffer.
pub struct Transfer<'a> {
    op: Op,
    start: u64,
    sectors: u64,
    per_frame: u8,
    issued: u64,
    read_into: &'a mut [u8],
    write_from: &'a [u8],
}

impl<'a> Transfer<'a> {
    /// Reads `buf.len() / 512` sectors from `lba` into `buf`.
    pub fn read(lba: u64, buf: &'a mut [u8], per_frame: u8) -> Transfer<'a> {
        Transfer {
            op: Op::Read,
            start: lba,
            sectors: (buf.len() / aoe_core::SECTOR_SIZE) as u64,
            per_frame,
            issued: 0,
            read_into: buf,
            write_from: &[],
        }
    }

    /// Writes `buf.len() / 512` sectors of `buf` from `lba`.
    pub fn write(lba: u64, buf: &'a [u8], per_frame: u8) -> Transfer<'a> {
        Transfer {
            op: Op::Write,
            start: lba,
            sectors: (buf.len() / aoe_core::SECTOR_SIZE) as u64,
            per_frame,
            issued: 0,
            read_into: &mut [],
            write_from: buf,
        }
    }
}

/// Octet range in a buffer of the frame `req` of a transfer that started at `start`.
fn span(req: &IoRequest) -> std::ops::Range<usize> {
    let offset = usize::try_from(req.cookie).unwrap_or(usize::MAX) * aoe_core::SECTOR_SIZE;
    offset..offset + usize::from(req.sectors) * aoe_core::SECTOR_SIZE
}

/// The next frame of a range of `sectors` from `start` of which `issued` are sent already.
fn next_frame(op: Op, start: u64, sectors: u64, issued: &mut u64, per_frame: u8) -> Next {
    if *issued >= sectors {
        return Next::Done;
    }
    let count = (sectors - *issued).min(u64::from(per_frame));
    let req = IoRequest {
        op,
        lba: start + *issued,
        sectors: u8::try_from(count).unwrap_or(per_frame),
        cookie: *issued,
    };
    *issued += count;
    Next::Issue(req)
}

impl Workload for Transfer<'_> {
    fn next(&mut self, _now: Duration) -> Next {
        next_frame(
            self.op,
            self.start,
            self.sectors,
            &mut self.issued,
            self.per_frame,
        )
    }

    fn fill(&mut self, req: &IoRequest, data: &mut [u8]) {
        data.copy_from_slice(&self.write_from[span(req)]);
    }

    fn complete(&mut self, req: &IoRequest, data: &[u8], _at: Duration) -> Result<(), Error> {
        if req.op == Op::Read {
            self.read_into[span(req)].copy_from_slice(data);
        }
        Ok(())
    }
}

/// Fills `sector` with the test pattern for `lba` and `seed`: every 8-octet word encodes the
/// LBA, the seed and its position, so misplaced, stale or torn sectors never match.
pub fn pattern_sector(lba: u64, seed: u64, sector: &mut [u8]) {
    let base = lba.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed;
    for (k, word) in (0u64..).zip(sector.chunks_exact_mut(8)) {
        let value = base.rotate_left(u32::try_from(k % 64).unwrap_or(0)) ^ (k << 56) ^ lba;
        word.copy_from_slice(&value.to_le_bytes());
    }
}

/// Writes the pattern of `seed` over a range, or reads the range back and checks it.
pub struct PatternCheck {
    op: Op,
    start: u64,
    sectors: u64,
    per_frame: u8,
    issued: u64,
    seed: u64,
    expected: [u8; aoe_core::SECTOR_SIZE],
}

impl PatternCheck {
    /// `op` (read to check, or write) over `sectors` from `lba`.
    pub fn new(op: Op, lba: u64, sectors: u64, seed: u64, per_frame: u8) -> PatternCheck {
        PatternCheck {
            op,
            start: lba,
            sectors,
            per_frame,
            issued: 0,
            seed,
            expected: [0; aoe_core::SECTOR_SIZE],
        }
    }
}

impl Workload for PatternCheck {
    fn next(&mut self, _now: Duration) -> Next {
        next_frame(
            self.op,
            self.start,
            self.sectors,
            &mut self.issued,
            self.per_frame,
        )
    }

    fn fill(&mut self, req: &IoRequest, data: &mut [u8]) {
        for (lba, sector) in (req.lba..).zip(data.chunks_exact_mut(aoe_core::SECTOR_SIZE)) {
            pattern_sector(lba, self.seed, sector);
        }
    }

    fn complete(&mut self, req: &IoRequest, data: &[u8], _at: Duration) -> Result<(), Error> {
        if req.op != Op::Read {
            return Ok(());
        }
        for (lba, sector) in (req.lba..).zip(data.chunks_exact(aoe_core::SECTOR_SIZE)) {
            pattern_sector(lba, self.seed, &mut self.expected);
            if sector != self.expected {
                return Err(Error::Mismatch { lba });
            }
        }
        Ok(())
    }
}

/// Latencies in a log-linear histogram: 16 buckets per power of two of nanoseconds, so a
/// percentile is within about 6 % of the true value.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64; 64 * 16]>,
    total: u64,
    max: Duration,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            counts: Box::new([0; 64 * 16]),
            total: 0,
            max: Duration::ZERO,
        }
    }
}

impl Histogram {
    fn bucket(nanos: u64) -> usize {
        if nanos < 16 {
            return usize::try_from(nanos).unwrap_or(0);
        }
        let octave = 63 - nanos.leading_zeros();
        let sub = (nanos >> (octave - 4)) & 15;
        usize::try_from((octave - 3) * 16 + u32::try_from(sub).unwrap_or(0)).unwrap_or(0)
    }

    fn bucket_upper(index: usize) -> u64 {
        if index < 16 {
            return index as u64;
        }
        let octave = u32::try_from(index / 16).unwrap_or(0) + 3;
        let sub = (index % 16) as u128;
        // In u128: the top bucket's bound is 2^64.
        let upper = ((16 + sub + 1) << (octave - 4)) - 1;
        u64::try_from(upper).unwrap_or(u64::MAX)
    }

    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.counts[Self::bucket(nanos)] += 1;
        self.total += 1;
        self.max = self.max.max(latency);
    }

    /// Latencies recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The latency below which `fraction` (0 to 1) of the samples fall (a bucket's upper
    /// bound); zero when empty.
    pub fn percentile(&self, fraction: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        // Rounding up keeps p99 of 100 samples at the 99th, not the 98th.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let rank = ((fraction * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let upper = Duration::from_nanos(Self::bucket_upper(index));
                return upper.min(self.max);
            }
        }
        self.max
    }

    /// The largest latency recorded.
    pub fn max(&self) -> Duration {
        self.max
    }
}

/// Where a benchmark's requests go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// One after another, wrapping at the end of the region.
    Sequential,
    /// Uniformly at random, aligned to the request size.
    Random,
}

/// What a benchmark does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchSpec {
    /// Read or write.
    pub op: Op,
    /// Sequential or random.
    pub access: Access,
    /// Sectors per request; a request is split into frames.
    pub request_sectors: u32,
    /// Requests in flight at most.
    pub queue_depth: usize,
    /// First sector of the region.
    pub region_start: u64,
    /// Sectors in the region.
    pub region_sectors: u64,
    /// How long to issue requests.
    pub duration: Duration,
    /// Stop after this many requests, if set.
    pub max_requests: Option<u64>,
    /// Seed of the random offsets.
    pub seed: u64,
}

/// What a benchmark measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BenchResult {
    /// From the first request to the last completion.
    pub elapsed: Duration,
    /// Requests completed.
    pub requests: u64,
    /// Octets moved.
    pub bytes: u64,
    /// Megabytes (10^6 octets) per second.
    pub mb_per_s: f64,
    /// Requests per second.
    pub iops: f64,
    /// Median request latency.
    pub p50: Duration,
    /// 99th-percentile request latency.
    pub p99: Duration,
    /// Largest request latency.
    pub max: Duration,
    /// Frames sent.
    pub frames: u64,
    /// Retransmissions.
    pub retransmits: u64,
    /// Replies ignored as stale, duplicate or foreign.
    pub stale: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct InFlight {
    lba: u64,
    issued: u32,
    done: u32,
    started: Duration,
    busy: bool,
}

/// The benchmark workload. Use [`bench()`] to run it.
pub struct Bench {
    spec: BenchSpec,
    per_frame: u8,
    slots: Vec<InFlight>,
    free: Vec<usize>,
    current: Option<usize>,
    started: Option<Duration>,
    last_done: Duration,
    issued_requests: u64,
    next_seq: u64,
    rng: u64,
    latencies: Histogram,
    done_requests: u64,
}

impl Bench {
    /// A benchmark of `spec` with frames of at most `per_frame` sectors.
    ///
    /// # Errors
    /// A zero request size or queue depth, or a region smaller than one request.
    pub fn new(spec: BenchSpec, per_frame: u8) -> Result<Bench, Error> {
        if spec.request_sectors == 0 || spec.queue_depth == 0 {
            return Err(Error::Invalid(
                "request size and queue depth must be at least 1".to_string(),
            ));
        }
        if spec.region_sectors < u64::from(spec.request_sectors) {
            return Err(Error::Invalid(format!(
                "region of {} sectors is smaller than one request of {}",
                spec.region_sectors, spec.request_sectors
            )));
        }
        Ok(Bench {
            spec,
            per_frame,
            slots: vec![InFlight::default(); spec.queue_depth],
            free: (0..spec.queue_depth).rev().collect(),
            current: None,
            started: None,
            last_done: Duration::ZERO,
            issued_requests: 0,
            next_seq: 0,
            rng: spec.seed | 1,
            latencies: Histogram::default(),
            done_requests: 0,
        })
    }

    fn next_lba(&mut self) -> u64 {
        let size = u64::from(self.spec.request_sectors);
        let positions = self.spec.region_sectors / size;
        let index = match self.spec.access {
            Access::Sequential => {
                let index = self.next_seq % positions;
                self.next_seq += 1;
                index
            }
            Access::Random => {
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                self.rng % positions
            }
        };
        self.spec.region_start + index * size
    }

    fn result(&self, engine_sent: u64, retransmits: u64, stale: u64) -> BenchResult {
        let elapsed = self
            .last_done
            .saturating_sub(self.started.unwrap_or(Duration::ZERO));
        let seconds = elapsed.as_secs_f64().max(1e-9);
        let bytes = self.done_requests
            * u64::from(self.spec.request_sectors)
            * aoe_core::SECTOR_SIZE as u64;
        #[allow(clippy::cast_precision_loss)]
        let (mb_per_s, iops) = (
            bytes as f64 / seconds / 1e6,
            self.done_requests as f64 / seconds,
        );
        BenchResult {
            elapsed,
            requests: self.done_requests,
            bytes,
            mb_per_s,
            iops,
            p50: self.latencies.percentile(0.50),
            p99: self.latencies.percentile(0.99),
            max: self.latencies.max(),
            frames: engine_sent,
            retransmits,
            stale,
        }
    }
}

impl Workload for Bench {
    fn next(&mut self, now: Duration) -> Next {
        let started = *self.started.get_or_insert(now);
        let current = match self.current {
            Some(index) => index,
            None => {
                let time_up = now.saturating_sub(started) >= self.spec.duration;
                let count_up = self
                    .spec
                    .max_requests
                    .is_some_and(|max| self.issued_requests >= max);
                if time_up || count_up {
                    // The engine still completes the requests in flight.
                    return Next::Done;
                }
                let Some(index) = self.free.pop() else {
                    return Next::Wait;
                };
                let lba = self.next_lba();
                self.slots[index] = InFlight {
                    lba,
                    issued: 0,
                    done: 0,
                    started: now,
                    busy: true,
                };
                self.issued_requests += 1;
                self.current = Some(index);
                index
            }
        };
        let slot = &mut self.slots[current];
        let remaining = self.spec.request_sectors - slot.issued;
        let count = remaining.min(u32::from(self.per_frame));
        let req = IoRequest {
            op: self.spec.op,
            lba: slot.lba + u64::from(slot.issued),
            sectors: u8::try_from(count).unwrap_or(self.per_frame),
            cookie: current as u64,
        };
        slot.issued += count;
        if slot.issued == self.spec.request_sectors {
            self.current = None;
        }
        Next::Issue(req)
    }

    fn fill(&mut self, req: &IoRequest, data: &mut [u8]) {
        // Cheap but not all zeros: the LBA at the start of each sector.
        for (lba, sector) in (req.lba..).zip(data.chunks_exact_mut(aoe_core::SECTOR_SIZE)) {
            sector[..8].copy_from_slice(&lba.to_le_bytes());
        }
    }

    fn complete(&mut self, req: &IoRequest, _data: &[u8], at: Duration) -> Result<(), Error> {
        let index = usize::try_from(req.cookie).unwrap_or(usize::MAX);
        let Some(slot) = self.slots.get_mut(index).filter(|slot| slot.busy) else {
            return Err(Error::Invalid("completion for no request".to_string()));
        };
        slot.done += u32::from(req.sectors);
        if slot.done == self.spec.request_sectors {
            slot.busy = false;
            self.latencies.record(at.saturating_sub(slot.started));
            self.free.push(index);
            self.done_requests += 1;
            self.last_done = at;
        }
        Ok(())
    }
}

/// Runs the benchmark `spec` through `engine`.
///
/// # Errors
/// As [`Engine::run`].
pub fn bench<L: super::Transport + ?Sized>(
    engine: &mut Engine,
    link: &mut L,
    spec: BenchSpec,
) -> Result<BenchResult, Error> {
    let before = engine.stats();
    let mut work = Bench::new(spec, engine.config().sectors_per_frame)?;
    engine.run(link, &mut work)?;
    let after = engine.stats();
    Ok(work.result(
        after.sent - before.sent,
        after.retransmits - before.retransmits,
        after.stale - before.stale,
    ))
}
