//! An in-process [`Transport`] to an `aoe_core::Target` over a `MemDisk`, with a virtual clock
//! and injected faults, so the initiator is tested without root and without a network.
//!
//! Time is virtual: a frame's reply arrives [`Faults::latency`] after it was sent (plus
//! jitter, which reorders replies), and [`Transport::recv`] with nothing due advances the clock to
//! the next arrival or by the whole timeout. Each fault hits a frame at random with its own
//! probability, drawn from a seeded generator, so every run is reproducible and no loss pattern
//! can line up with the initiator's retransmissions forever.

use super::Transport;
use aoe_core::disk::MemDisk;
use aoe_core::wire::EthernetAddress;
use aoe_core::{Config, Port, Target};
use std::collections::VecDeque;
use std::time::Duration;

/// The simulated target's MAC.
pub const TARGET_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0xAE, 0x01]);
/// The simulated initiator's MAC.
pub const INITIATOR_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0xAE, 0x02]);

/// Faults to inject. A value of `n` in an `every` field hits a frame with probability 1/n
/// (1: every frame; 0: never).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Requests lost before the target sees them.
    pub drop_request_every: u32,
    /// Replies lost on the way back (the target did the work).
    pub drop_reply_every: u32,
    /// Replies delivered twice.
    pub duplicate_reply_every: u32,
    /// Replies held back by [`Faults::delay`] (arriving after a retransmission).
    pub delay_reply_every: u32,
    /// How long delayed replies are held.
    pub delay: Duration,
    /// One-way latency of every reply.
    pub latency: Duration,
    /// Up to this much extra latency at random, which reorders replies.
    pub jitter: Duration,
    /// Seed of the jitter generator.
    pub seed: u64,
}

/// What the simulated network did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Requests sent by the initiator.
    pub requests: u64,
    /// Requests dropped.
    pub dropped_requests: u64,
    /// Replies dropped.
    pub dropped_replies: u64,
    /// Replies duplicated.
    pub duplicated: u64,
    /// Replies delayed.
    pub delayed: u64,
    /// Replies delivered out of send order.
    pub reordered: u64,
}

/// A link whose other end is an in-process target.
pub struct SimTransport {
    /// The target (inspect its disk and state in tests).
    pub target: Target<MemDisk<Vec<u8>>>,
    port: Port,
    mtu: usize,
    clock: Duration,
    faults: Faults,
    rng: u64,
    in_transit: VecDeque<(Duration, u64, Vec<u8>)>,
    sent_seq: u64,
    last_delivered: u64,
    replies: u64,
    stats: SimStats,
    tx: Vec<u8>,
}

impl SimTransport {
    /// Exports `shelf.slot`, a zeroed disk of `sectors` sectors with Buffer Count
    /// `buffer_count`, on a link of `mtu`.
    pub fn new(
        shelf: u16,
        slot: u8,
        sectors: usize,
        buffer_count: u16,
        mtu: usize,
    ) -> SimTransport {
        let mut config = Config::new(shelf, slot);
        config.buffer_count = buffer_count;
        config.max_frame_len = mtu + 14;
        let disk = MemDisk::new(vec![0u8; sectors * 512]);
        let target = Target::new(config, disk).expect("a valid simulated export");
        SimTransport::with_target(target, mtu)
    }

    /// A link to a target made by the caller.
    pub fn with_target(target: Target<MemDisk<Vec<u8>>>, mtu: usize) -> SimTransport {
        SimTransport {
            target,
            port: Port::new(TARGET_MAC, mtu),
            mtu,
            clock: Duration::from_secs(1),
            faults: Faults {
                latency: Duration::from_micros(50),
                ..Faults::default()
            },
            rng: 0x9E37_79B9_7F4A_7C15,
            in_transit: VecDeque::new(),
            sent_seq: 0,
            last_delivered: 0,
            replies: 0,
            stats: SimStats::default(),
            tx: vec![0u8; mtu + 14],
        }
    }

    /// Sets the faults to inject from now on.
    pub fn set_faults(&mut self, faults: Faults) {
        self.rng = faults.seed | 1;
        self.faults = faults;
    }

    /// What the network did so far.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// Delivers `frame` from `src` to the target now, as another host would (its reply, if
    /// any, is returned instead of delivered).
    pub fn inject(&mut self, frame: &[u8]) -> Option<Vec<u8>> {
        let len = self.target.handle(&self.port, frame, &mut self.tx)?;
        Some(self.tx[..len].to_vec())
    }

    fn random(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn hits(&mut self, every: u32) -> bool {
        every != 0 && self.random().is_multiple_of(u64::from(every))
    }
}

impl Transport for SimTransport {
    fn mac(&self) -> EthernetAddress {
        INITIATOR_MAC
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn now(&self) -> Duration {
        self.clock
    }

    fn send(&mut self, frames: &[&[u8]]) -> std::io::Result<()> {
        for frame in frames {
            self.stats.requests += 1;
            if self.hits(self.faults.drop_request_every) {
                self.stats.dropped_requests += 1;
                continue;
            }
            let Some(len) = self.target.handle(&self.port, frame, &mut self.tx) else {
                continue;
            };
            self.replies += 1;
            if self.hits(self.faults.drop_reply_every) {
                self.stats.dropped_replies += 1;
                continue;
            }
            let mut arrival = self.clock + self.faults.latency;
            let jitter = self.faults.jitter.as_nanos();
            if jitter > 0 {
                let extra = u128::from(self.random()) % jitter;
                arrival += Duration::from_nanos(u64::try_from(extra).unwrap_or(0));
            }
            if self.hits(self.faults.delay_reply_every) {
                self.stats.delayed += 1;
                arrival += self.faults.delay;
            }
            let copies = if self.hits(self.faults.duplicate_reply_every) {
                self.stats.duplicated += 1;
                2
            } else {
                1
            };
            for _ in 0..copies {
                self.sent_seq += 1;
                let reply = self.tx[..len].to_vec();
                let at = self
                    .in_transit
                    .iter()
                    .position(|(t, _, _)| *t > arrival)
                    .unwrap_or(self.in_transit.len());
                self.in_transit.insert(at, (arrival, self.sent_seq, reply));
            }
        }
        Ok(())
    }

    fn recv(
        &mut self,
        timeout: Duration,
        on_frame: &mut dyn FnMut(&[u8], Duration),
    ) -> std::io::Result<usize> {
        let limit = self.clock + timeout;
        match self.in_transit.front() {
            Some((arrival, _, _)) if *arrival <= limit => {
                self.clock = self.clock.max(*arrival);
            }
            _ => {
                self.clock = limit;
                return Ok(0);
            }
        }
        let mut delivered = 0;
        while let Some((arrival, _, _)) = self.in_transit.front() {
            if *arrival > self.clock {
                break;
            }
            let Some((arrival, seq, frame)) = self.in_transit.pop_front() else {
                break;
            };
            if seq < self.last_delivered {
                self.stats.reordered += 1;
            }
            self.last_delivered = seq;
            on_frame(&frame, arrival);
            delivered += 1;
        }
        Ok(delivered)
    }
}
