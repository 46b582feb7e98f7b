//! The initiator against an in-process `aoe_core::Target`, with and without injected faults.
#![allow(clippy::cast_possible_truncation)]

use super::control::{self, MaskEdit, Retry, Session};
use super::engine::{Engine, EngineConfig, IoRequest, Next, Op, Workload};
use super::frame::Address;
use super::sim::{Faults, INITIATOR_MAC, SimTransport, TARGET_MAC};
use super::work::{self, Access, BenchSpec, Histogram, PatternCheck, Transfer};
use super::{Error, Transport};
use aoe_core::wire::EthernetAddress;
use aoe_core::wire::aoe::ErrorCode;
use aoe_core::wire::cfg::ConfigCommand;
use std::time::Duration;

const SECTORS: usize = 2048; // 1 MiB

fn open(link: &mut SimTransport) -> (Session, Engine) {
    let session = Session::open(link, 7, 1, Retry::default()).expect("target found");
    let window = usize::from(session.info.buffer_count);
    let config = EngineConfig::new(window, session.sectors_per_frame);
    let engine = Engine::new(link.mac(), link.mtu(), session.address(), config).unwrap();
    (session, engine)
}

fn data(sectors: usize, seed: u8) -> Vec<u8> {
    (0..sectors * 512)
        .map(|i| (i as u8) ^ ((i / 512) as u8).rotate_left(3) ^ seed)
        .collect()
}

#[test]
fn session_reports_what_the_target_advertises() {
    let mut link = SimTransport::new(7, 1, SECTORS, 24, 9000);
    let (session, _) = open(&mut link);
    assert_eq!(session.info.mac, TARGET_MAC);
    assert_eq!((session.info.shelf, session.info.slot), (7, 1));
    assert_eq!(session.info.buffer_count, 24);
    assert_eq!(session.sectors_per_frame, 17);
    assert_eq!(session.identity.sectors, SECTORS as u64);
    assert!(session.identity.lba48);
}

#[test]
fn discovery_finds_the_target_and_not_a_wrong_address() {
    let mut link = SimTransport::new(7, 1, SECTORS, 16, 1500);
    let found = control::discover(&mut link, Address::EVERYONE, Duration::from_millis(200));
    let found = found.unwrap();
    assert_eq!(found.len(), 1, "one target, asked twice, listed once");
    assert_eq!(found[0].sector_count, 2);
    let elsewhere = Address {
        shelf: 8,
        ..Address::EVERYONE
    };
    let found = control::discover(&mut link, elsewhere, Duration::from_millis(200)).unwrap();
    assert!(found.is_empty());
    let err = Session::open(&mut link, 8, 1, Retry::default()).unwrap_err();
    assert!(matches!(err, Error::NoAnswer { .. }), "{err}");
}

#[test]
fn whole_disk_write_then_read_back() {
    for mtu in [1500, 9000] {
        let mut link = SimTransport::new(7, 1, SECTORS, 16, mtu);
        let (_, mut engine) = open(&mut link);
        let spf = engine.config().sectors_per_frame;
        let written = data(SECTORS, 0x5a);
        engine
            .run(&mut link, &mut Transfer::write(0, &written, spf))
            .unwrap();
        assert_eq!(link.target.disk().as_bytes(), &written[..], "MTU {mtu}");
        let mut read = vec![0u8; written.len()];
        engine
            .run(&mut link, &mut Transfer::read(0, &mut read, spf))
            .unwrap();
        assert_eq!(read, written);
        let stats = engine.stats();
        assert_eq!(stats.retransmits, 0);
        let frames = 2 * SECTORS.div_ceil(usize::from(spf)) as u64;
        assert_eq!(stats.completed, frames);
        assert_eq!(stats.sectors, 2 * SECTORS as u64);
    }
}

#[test]
fn lost_duplicated_delayed_and_reordered_frames_lose_nothing() {
    let mut link = SimTransport::new(7, 1, SECTORS, 16, 1500);
    let (_, mut engine) = open(&mut link);
    link.set_faults(Faults {
        drop_request_every: 7,
        drop_reply_every: 11,
        duplicate_reply_every: 5,
        delay_reply_every: 13,
        delay: Duration::from_millis(400),
        latency: Duration::from_micros(50),
        jitter: Duration::from_micros(200),
        seed: 42,
    });
    let spf = engine.config().sectors_per_frame;
    let written = data(SECTORS, 0x33);
    engine
        .run(&mut link, &mut Transfer::write(0, &written, spf))
        .unwrap();
    let mut read = vec![0u8; written.len()];
    engine
        .run(&mut link, &mut Transfer::read(0, &mut read, spf))
        .unwrap();
    assert_eq!(link.target.disk().as_bytes(), &written[..]);
    assert_eq!(read, written);
    let sim = link.stats();
    let stats = engine.stats();
    assert!(
        sim.dropped_requests > 0 && sim.dropped_replies > 0,
        "{sim:?}"
    );
    assert!(sim.duplicated > 0 && sim.delayed > 0, "{sim:?}");
    assert!(sim.reordered > 0, "jitter reorders replies: {sim:?}");
    assert!(
        stats.retransmits >= sim.dropped_requests + sim.dropped_replies,
        "every loss is retransmitted: {stats:?} {sim:?}"
    );
    assert!(
        stats.stale >= sim.duplicated,
        "duplicates ignored: {stats:?}"
    );
}

/// Counts frames in flight through the workload interface.
struct WindowProbe {
    issued: u64,
    completed: u64,
    max_outstanding: u64,
    total: u64,
}

impl Workload for WindowProbe {
    fn next(&mut self, _now: Duration) -> Next {
        if self.issued == self.total {
            return Next::Done;
        }
        self.issued += 1;
        self.max_outstanding = self.max_outstanding.max(self.issued - self.completed);
        Next::Issue(IoRequest {
            op: Op::Read,
            lba: self.issued % 100,
            sectors: 2,
            cookie: 0,
        })
    }

    fn fill(&mut self, _req: &IoRequest, _data: &mut [u8]) {}

    fn complete(&mut self, _req: &IoRequest, data: &[u8], _at: Duration) -> Result<(), Error> {
        assert_eq!(data.len(), 1024);
        self.completed += 1;
        Ok(())
    }
}

#[test]
fn window_never_exceeds_the_buffer_count() {
    let mut link = SimTransport::new(7, 1, SECTORS, 16, 1500);
    let (_, mut engine) = open(&mut link);
    let mut probe = WindowProbe {
        issued: 0,
        completed: 0,
        max_outstanding: 0,
        total: 1000,
    };
    engine.run(&mut link, &mut probe).unwrap();
    assert_eq!(probe.completed, 1000);
    assert_eq!(probe.max_outstanding, 16);
}

#[test]
fn no_answer_gives_up_with_a_clear_error() {
    let mut link = SimTransport::new(7, 1, SECTORS, 16, 1500);
    let (_, mut engine) = open(&mut link);
    link.set_faults(Faults {
        drop_request_every: 1,
        ..Faults::default()
    });
    let mut buf = vec![0u8; 4096];
    let start = link.now();
    let err = engine
        .run(&mut link, &mut Transfer::read(0, &mut buf, 2))
        .unwrap_err();
    assert!(matches!(err, Error::NoAnswer { .. }), "{err}");
    let waited = link.now() - start;
    assert!(waited >= Duration::from_secs(10) && waited < Duration::from_secs(13));
    // The engine is usable again once the network heals.
    link.set_faults(Faults::default());
    engine
        .run(&mut link, &mut Transfer::read(0, &mut buf, 2))
        .unwrap();
}

#[test]
fn the_rto_adapts_to_the_round_trip() {
    let mut link = SimTransport::new(7, 1, SECTORS, 16, 1500);
    let (_, mut engine) = open(&mut link);
    assert_eq!(engine.rto(), Duration::from_millis(200));
    // Replies take 300 ms, longer than the first RTO: the first frames are sent twice, then
    // the measured round trip raises the RTO and nothing more is retransmitted.
    link.set_faults(Faults {
        latency: Duration::from_millis(300),
        ..Faults::default()
    });
    let mut buf = vec![0u8; 64 * 1024];
    engine
        .run(&mut link, &mut Transfer::read(0, &mut buf, 2))
        .unwrap();
    let first = engine.stats().retransmits;
    assert!(first > 0, "the first window timed out");
    assert!(
        engine.rto() >= Duration::from_millis(300),
        "{:?}",
        engine.rto()
    );
    engine
        .run(&mut link, &mut Transfer::read(0, &mut buf, 2))
        .unwrap();
    assert_eq!(
        engine.stats().retransmits,
        first,
        "no retransmission once adapted"
    );
    // Fast replies bring it down to the floor.
    link.set_faults(Faults::default());
    engine
        .run(&mut link, &mut Transfer::read(0, &mut buf, 2))
        .unwrap();
    assert_eq!(engine.rto(), engine.config().min_rto);
}

#[test]
fn ata_and_aoe_errors_are_reported() {
    let mut link = SimTransport::new(7, 1, SECTORS, 16, 1500);
    let (_, mut engine) = open(&mut link);
    let mut buf = vec![0u8; 1024];
    let err = engine
        .run(
            &mut link,
            &mut Transfer::read(SECTORS as u64 - 1, &mut buf, 2),
        )
        .unwrap_err();
    match err {
        Error::Ata { error, lba, .. } => {
            assert_eq!(error & 0x10, 0x10, "IDNF");
            assert_eq!(lba, SECTORS as u64 - 1);
        }
        other => panic!("expected an ATA error, got {other}"),
    }
    let other = EthernetAddress([2, 0, 0, 0, 0, 0x99]);
    link.target.set_reservations(&[other]).unwrap();
    let err = engine
        .run(&mut link, &mut Transfer::read(0, &mut buf, 2))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Aoe {
                code: ErrorCode::TargetReserved,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn pattern_write_and_check_detects_a_changed_sector() {
    let mut link = SimTransport::new(7, 1, SECTORS, 16, 9000);
    let (_, mut engine) = open(&mut link);
    let spf = engine.config().sectors_per_frame;
    let sectors = SECTORS as u64;
    engine
        .run(
            &mut link,
            &mut PatternCheck::new(Op::Write, 0, sectors, 9, spf),
        )
        .unwrap();
    engine
        .run(
            &mut link,
            &mut PatternCheck::new(Op::Read, 0, sectors, 9, spf),
        )
        .unwrap();
    link.target.disk_mut().as_bytes_mut()[700 * 512 + 3] ^= 1;
    let err = engine
        .run(
            &mut link,
            &mut PatternCheck::new(Op::Read, 0, sectors, 9, spf),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Mismatch { lba: 700 }), "{err}");
}

#[test]
fn config_mask_and_reserve_commands() {
    let mut link = SimTransport::new(7, 1, SECTORS, 16, 1500);
    let (session, _) = open(&mut link);
    let to = session.address();
    let retry = Retry::default();
    let set = control::query_config(&mut link, to, ConfigCommand::Set, b"rack 4", retry).unwrap();
    assert_eq!(set.config_string, b"rack 4");
    let err = control::query_config(&mut link, to, ConfigCommand::Set, b"other", retry);
    assert!(
        matches!(
            err,
            Err(Error::Aoe {
                code: ErrorCode::ConfigStringPresent,
                ..
            })
        ),
        "{err:?}"
    );
    let forced =
        control::query_config(&mut link, to, ConfigCommand::ForceSet, b"other", retry).unwrap();
    assert_eq!(forced.config_string, b"other");
    assert_eq!(link.target.config_string(), b"other");

    let friend = EthernetAddress([2, 0, 0, 0, 0, 0x42]);
    let list = control::mask(&mut link, to, &[MaskEdit::Add(INITIATOR_MAC)], retry).unwrap();
    assert_eq!(list, vec![INITIATOR_MAC]);
    let list = control::mask(&mut link, to, &[MaskEdit::Add(friend)], retry).unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(control::mask(&mut link, to, &[], retry).unwrap().len(), 2);
    let list = control::mask(&mut link, to, &[MaskEdit::Delete(INITIATOR_MAC)], retry).unwrap();
    assert_eq!(list, vec![friend]);
    // We are no longer on the mask: the target is silent to us.
    let quick = Retry {
        rto: Duration::from_millis(100),
        give_up: Duration::from_millis(500),
    };
    assert!(matches!(
        control::mask(&mut link, to, &[], quick),
        Err(Error::NoAnswer { .. })
    ));
    link.target.mask_remove(&friend);

    let list = control::reserve(&mut link, to, Some(&[INITIATOR_MAC]), false, retry).unwrap();
    assert_eq!(list, vec![INITIATOR_MAC]);
    assert_eq!(link.target.reservations(), &[INITIATOR_MAC]);
    assert_eq!(
        control::reserve(&mut link, to, None, false, retry).unwrap(),
        vec![INITIATOR_MAC]
    );
    let list = control::reserve(&mut link, to, Some(&[]), false, retry).unwrap();
    assert!(list.is_empty());
    assert!(link.target.reservations().is_empty());
    assert_eq!(
        control::flush(&mut link, to, &session.identity, retry).unwrap(),
        control::Flushed::Ext
    );
    let mut standard_only = session.identity.clone();
    standard_only.flush_ext = false;
    assert_eq!(
        control::flush(&mut link, to, &standard_only, retry).unwrap(),
        control::Flushed::Standard
    );
    standard_only.flush = false;
    assert_eq!(
        control::flush(&mut link, to, &standard_only, retry).unwrap(),
        control::Flushed::NotSupported
    );
    assert_eq!(link.target.stats().flushes, 2);
}

#[test]
fn bench_runs_every_mode_and_counts_requests() {
    let mut link = SimTransport::new(7, 1, SECTORS, 16, 1500);
    let (_, mut engine) = open(&mut link);
    for op in [Op::Read, Op::Write] {
        for access in [Access::Sequential, Access::Random] {
            let spec = BenchSpec {
                op,
                access,
                request_sectors: 8,
                queue_depth: 4,
                region_start: 0,
                region_sectors: SECTORS as u64,
                duration: Duration::from_secs(60),
                max_requests: Some(500),
                seed: 3,
            };
            let result = work::bench(&mut engine, &mut link, spec).unwrap();
            assert_eq!(result.requests, 500, "{op:?} {access:?}");
            assert_eq!(result.bytes, 500 * 8 * 512);
            assert_eq!(result.frames, 500 * 4, "4 KiB in 1 KiB frames");
            assert_eq!(result.retransmits, 0);
            assert!(result.p50 >= Duration::from_micros(50), "{result:?}");
            assert!(result.p99 >= result.p50 && result.max >= result.p99);
            assert!(result.mb_per_s > 0.0 && result.iops > 0.0);
        }
    }
}

#[test]
fn histogram_percentiles_are_close() {
    let mut histogram = Histogram::default();
    for micros in 1..=1000u64 {
        histogram.record(Duration::from_micros(micros));
    }
    let p50 = histogram.percentile(0.5).as_micros() as f64;
    let p99 = histogram.percentile(0.99).as_micros() as f64;
    assert!((p50 - 500.0).abs() / 500.0 < 0.07, "{p50}");
    assert!((p99 - 990.0).abs() / 990.0 < 0.07, "{p99}");
    assert_eq!(histogram.percentile(1.0), Duration::from_micros(1000));
    assert_eq!(Histogram::default().percentile(0.5), Duration::ZERO);
    let mut extreme = Histogram::default();
    extreme.record(Duration::MAX);
    extreme.record(Duration::ZERO);
    assert_eq!(extreme.percentile(1.0), Duration::from_nanos(u64::MAX));
    assert_eq!(extreme.percentile(0.5), Duration::ZERO);
}

#[test]
fn junk_frames_are_ignored() {
    let mut link = SimTransport::new(7, 1, SECTORS, 16, 1500);
    let (_, mut engine) = open(&mut link);
    let mut junk = Junk { inner: link };
    let mut buf = vec![0u8; 8192];
    engine
        .run(&mut junk, &mut Transfer::read(0, &mut buf, 2))
        .unwrap();
    assert!(engine.stats().stale > 0);
}

/// A link that adds a junk frame (truncated, wrong ethertype, forged tag) to every batch.
struct Junk {
    inner: SimTransport,
}

impl Transport for Junk {
    fn mac(&self) -> EthernetAddress {
        self.inner.mac()
    }
    fn mtu(&self) -> usize {
        self.inner.mtu()
    }
    fn now(&self) -> Duration {
        self.inner.now()
    }
    fn send(&mut self, frames: &[&[u8]]) -> std::io::Result<()> {
        self.inner.send(frames)
    }
    fn recv(
        &mut self,
        timeout: Duration,
        on_frame: &mut dyn FnMut(&[u8], Duration),
    ) -> std::io::Result<usize> {
        let now = self.inner.now();
        let mut forged = [0u8; 60];
        forged[..6].copy_from_slice(&INITIATOR_MAC.0);
        forged[6..12].copy_from_slice(&TARGET_MAC.0);
        forged[12..14].copy_from_slice(&[0x88, 0xa2]);
        forged[14..24].copy_from_slice(&[0x18, 0, 0, 7, 1, 0, 0, 0, 0x04, 0x01]);
        on_frame(&forged, now);
        on_frame(&forged[..20], now);
        forged[12] = 0x08;
        on_frame(&forged, now);
        self.inner.recv(timeout, on_frame)
    }
}

#[test]
fn random_fault_mixes_never_lose_or_misplace_data() {
    let mut state = 0x1234_5678_9abc_def1u64;
    let mut next = |bound: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % bound
    };
    for case in 0..40 {
        let mtu = if next(2) == 0 { 1500 } else { 9000 };
        let mut link = SimTransport::new(7, 1, 512, 32, mtu);
        let session = Session::open(&mut link, 7, 1, Retry::default()).unwrap();
        let window = 1 + next(32) as usize;
        let spf = 1 + next(u64::from(session.sectors_per_frame)) as u8;
        let mut config = EngineConfig::new(window, spf);
        // Virtual time costs nothing: this test is about integrity under heavy loss.
        config.give_up = Duration::from_secs(3600);
        let mut engine = Engine::new(link.mac(), link.mtu(), session.address(), config).unwrap();
        let faults = Faults {
            drop_request_every: [0, 3, 5, 17][next(4) as usize],
            drop_reply_every: [0, 2, 7, 19][next(4) as usize],
            duplicate_reply_every: [0, 1, 4][next(3) as usize],
            delay_reply_every: [0, 3, 11][next(3) as usize],
            delay: Duration::from_millis(50 + next(500)),
            latency: Duration::from_micros(10 + next(5000)),
            jitter: Duration::from_micros(next(3000)),
            seed: next(u64::MAX),
        };
        link.set_faults(faults);
        let written = data(512, case as u8);
        let context = format!("case {case}: window {window}, spf {spf}, {faults:?}");
        engine
            .run(&mut link, &mut Transfer::write(0, &written, spf))
            .unwrap_or_else(|e| panic!("{context}: {e}"));
        let mut read = vec![0u8; written.len()];
        engine
            .run(&mut link, &mut Transfer::read(0, &mut read, spf))
            .unwrap_or_else(|e| panic!("{context}: {e}"));
        assert!(link.target.disk().as_bytes() == &written[..], "{context}");
        assert!(read == written, "{context}");
    }
}
