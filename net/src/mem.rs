//! An Ethernet cable in memory: two [`MemLink`]s joined back to back, for tests of whatever
//! sits on a link (the target's worker, the initiator) without root or a network.
//!
//! A frame sent on one end is copied into the other end's queue and received from there into
//! a pool frame, in order, like a veth pair; nothing is dropped unless the peer's queue holds
//! `queue_frames` frames already (then the new frame is dropped and counted, as a full receive
//! buffer would).

use crate::frame::{Arena, Frame};
use crate::{EthernetAddress, Link, NetError};
use std::collections::VecDeque;
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// One direction of the cable.
#[derive(Debug, Default)]
struct Queue {
    frames: Mutex<(VecDeque<Vec<u8>>, u64)>,
    ready: Condvar,
}

/// One end of an in-memory cable; see the [module docs](self).
#[derive(Debug)]
pub struct MemLink {
    name: String,
    mac: EthernetAddress,
    mtu: usize,
    inbox: Arc<Queue>,
    outbox: Arc<Queue>,
    limit: usize,
    pool: Arc<Arena>,
}

/// Two links joined back to back: what `a` sends, `b` receives, and the other way round.
pub fn pair(a: EthernetAddress, b: EthernetAddress, mtu: usize) -> (MemLink, MemLink) {
    let (ab, ba) = (Arc::new(Queue::default()), Arc::new(Queue::default()));
    let end = |name: &str, mac, inbox: &Arc<Queue>, outbox: &Arc<Queue>| MemLink {
        name: name.to_owned(),
        mac,
        mtu,
        inbox: Arc::clone(inbox),
        outbox: Arc::clone(outbox),
        limit: 4096,
        pool: Arena::pool(1024),
    };
    (end("mem-a", a, &ba, &ab), end("mem-b", b, &ab, &ba))
}

fn lock(queue: &Queue) -> std::sync::MutexGuard<'_, (VecDeque<Vec<u8>>, u64)> {
    queue
        .frames
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MemLink {
    /// Frames dropped on the way to this end because its queue was full.
    pub fn dropped(&self) -> u64 {
        lock(&self.inbox).1
    }
}

impl Link for MemLink {
    fn name(&self) -> &str {
        &self.name
    }

    fn mac(&self) -> EthernetAddress {
        self.mac
    }

    fn mtu(&self) -> Result<usize, NetError> {
        Ok(self.mtu)
    }

    fn recv(&mut self, frames: &mut Vec<Frame>, max: usize) -> Result<usize, NetError> {
        let mut queue = lock(&self.inbox);
        let mut received = 0;
        while received < max {
            let Some(bytes) = queue.0.front() else { break };
            let Some(mut frame) = self.pool.take() else {
                break;
            };
            frame.fill(bytes);
            queue.0.pop_front();
            frames.push(frame);
            received += 1;
        }
        Ok(received)
    }

    fn wait(&mut self, timeout: Option<Duration>) -> Result<bool, NetError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut queue = lock(&self.inbox);
        while queue.0.is_empty() {
            let left = match deadline {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return Ok(false),
                },
                None => Duration::from_secs(3600),
            };
            queue = self
                .inbox
                .ready
                .wait_timeout(queue, left)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
        Ok(true)
    }

    fn readiness_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    fn alloc(&mut self) -> Option<Frame> {
        self.pool.take()
    }

    fn send(&mut self, frames: &mut Vec<Frame>) -> Result<usize, NetError> {
        let mut queue = lock(&self.outbox);
        let mut sent = 0;
        for frame in frames.drain(..).filter(|frame| !frame.is_empty()) {
            if queue.0.len() >= self.limit || frame.len() > self.mtu + crate::ETHERNET_HEADER_LEN {
                queue.1 += 1;
                continue;
            }
            queue.0.push_back(frame.as_slice().to_vec());
            sent += 1;
        }
        drop(queue);
        self.outbox.ready.notify_all();
        Ok(sent)
    }

    fn set_buffer_bytes(&mut self, _rx: usize, _tx: usize) -> Result<(usize, usize), NetError> {
        Ok((0, 0))
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn frames_cross_in_order_and_too_long_ones_are_dropped() {
        let (mut a, mut b) = pair(
            EthernetAddress([2, 0, 0, 0, 0, 1]),
            EthernetAddress([2, 0, 0, 0, 0, 2]),
            1500,
        );
        assert!(!b.wait(Some(Duration::from_millis(1))).unwrap());
        let mut batch = Vec::new();
        for len in [60usize, 1514, 1515, 100] {
            let mut frame = a.alloc().unwrap();
            frame.fill(&vec![u8::try_from(len % 251).unwrap(); len]);
            batch.push(frame);
        }
        assert_eq!(a.send(&mut batch).unwrap(), 3);
        assert_eq!(b.dropped(), 1, "the frame over the MTU");
        assert!(b.wait(Some(Duration::from_secs(1))).unwrap());
        let mut got = Vec::new();
        assert_eq!(b.recv(&mut got, 10).unwrap(), 3);
        let lens: Vec<usize> = got.iter().map(Frame::len).collect();
        assert_eq!(lens, [60, 1514, 100]);
        assert_eq!(b.mac(), EthernetAddress([2, 0, 0, 0, 0, 2]));
    }
}
