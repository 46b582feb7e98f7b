//! A disk in memory behind the storage seam, whose queues may complete requests out of order:
//! the reference back end for tests of the ordering rules and of the target's event loop.
//!
//! With [`MemStorage::reordering`], a queue keeps every committed request in flight until a
//! reap, and then completes a pseudo-random subset of them (seeded, so runs repeat), each
//! taking effect on the disk only when it completes, as on a device that runs requests in
//! parallel. Without it, requests complete in order at commit. Completed writes are
//! [`Durability::Stable`] (the memory is the medium); a FLUSH does nothing more.

use crate::{Capabilities, Completion, Durability, IoError, IoOp, IoQueue, Request, Storage};
use aoe_core::disk::{ErrorKind, SECTOR_SIZE};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A RAM disk; see the [module docs](self).
#[derive(Debug)]
pub struct MemStorage {
    data: Arc<Mutex<Vec<u8>>>,
    capabilities: Capabilities,
    reorder_seed: Option<u64>,
}

impl MemStorage {
    /// A zeroed disk of `sectors` sectors whose queues complete in order.
    pub fn new(sectors: u64) -> MemStorage {
        let bytes = usize::try_from(sectors).unwrap_or(0) * SECTOR_SIZE;
        MemStorage {
            data: Arc::new(Mutex::new(vec![0; bytes])),
            capabilities: Capabilities {
                sectors,
                read_only: false,
                durability: Durability::Stable,
                queue_depth: 256,
                completes_inline: true,
            },
            reorder_seed: None,
        }
    }

    /// The same, with queues that complete out of order, drawn from `seed`.
    pub fn reordering(sectors: u64, seed: u64) -> MemStorage {
        let mut storage = MemStorage::new(sectors);
        storage.reorder_seed = Some(seed | 1);
        storage.capabilities.completes_inline = false;
        storage
    }

    /// A copy of the disk's contents.
    pub fn contents(&self) -> Vec<u8> {
        lock(&self.data).clone()
    }
}

fn lock(data: &Mutex<Vec<u8>>) -> std::sync::MutexGuard<'_, Vec<u8>> {
    data.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Storage for MemStorage {
    fn describe(&self) -> String {
        format!("memory ({} sectors)", self.capabilities.sectors)
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn queue(&self, _waker: &crate::Waker) -> Result<Box<dyn IoQueue>, String> {
        Ok(Box::new(MemQueue {
            data: Arc::clone(&self.data),
            depth: self.capabilities.queue_depth,
            submitted: Vec::new(),
            running: Vec::new(),
            done: Vec::new(),
            rng: self.reorder_seed,
        }))
    }

    fn flush(&self) -> Result<(), IoError> {
        Ok(())
    }
}

/// A queue of a [`MemStorage`].
#[derive(Debug)]
struct MemQueue {
    data: Arc<Mutex<Vec<u8>>>,
    depth: usize,
    submitted: Vec<Request>,
    running: Vec<Request>,
    done: Vec<Completion>,
    /// xorshift state; `None` completes in order at commit.
    rng: Option<u64>,
}

impl MemQueue {
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng.unwrap_or(1);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = Some(x);
        x
    }

    /// Runs `request` against the memory and queues its completion.
    fn run(&mut self, mut request: Request) {
        let io = request.io;
        let range = io.data_range();
        let result = {
            let mut data = lock(&self.data);
            let start = usize::try_from(io.lba)
                .unwrap_or(usize::MAX)
                .saturating_mul(SECTOR_SIZE);
            let end = start.saturating_add(io.byte_len());
            if io.op != IoOp::Flush && end > data.len() {
                Err(IoError::of(ErrorKind::OutOfRange))
            } else {
                match io.op {
                    IoOp::Read => {
                        request.frame.buffer_mut()[range].copy_from_slice(&data[start..end])
                    }
                    IoOp::Write => data[start..end].copy_from_slice(&request.frame.buffer()[range]),
                    IoOp::Flush => {}
                }
                Ok(())
            }
        };
        self.done.push(Completion {
            tag: request.tag,
            io,
            result,
            frame: request.frame,
        });
    }
}

impl IoQueue for MemQueue {
    fn submit(&mut self, request: Request) -> Result<(), Request> {
        if self.in_flight() >= self.depth {
            return Err(request);
        }
        self.submitted.push(request);
        Ok(())
    }

    fn commit(&mut self) {
        let submitted = std::mem::take(&mut self.submitted);
        if self.rng.is_some() {
            self.running.extend(submitted);
        } else {
            for request in submitted {
                self.run(request);
            }
        }
    }

    fn reap(&mut self, completions: &mut Vec<Completion>) -> usize {
        if self.rng.is_some() && !self.running.is_empty() {
            // Complete a random, non-empty subset, in random order.
            let count = 1 + usize::try_from(self.next_random()).unwrap_or(0) % self.running.len();
            for _ in 0..count {
                let pick = usize::try_from(self.next_random()).unwrap_or(0) % self.running.len();
                let request = self.running.swap_remove(pick);
                self.run(request);
            }
        }
        let count = self.done.len();
        completions.append(&mut self.done);
        count
    }

    fn in_flight(&self) -> usize {
        self.submitted.len() + self.running.len() + self.done.len()
    }

    fn wait(&mut self, _timeout: Duration) -> bool {
        !self.done.is_empty() || !self.running.is_empty()
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::{DiskIo, Ordered};
    use aoe_net::Arena;

    /// A deterministic workload: reads, writes (data derived from the tag) and flushes over a
    /// small disk, so that requests overlap often.
    fn workload(seed: u64, count: u64, sectors: u64) -> Vec<DiskIo> {
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..count)
            .map(|_| {
                let kind = next() % 10;
                let count = 1 + u8::try_from(next() % 4).unwrap_or(0);
                let lba = next() % (sectors - u64::from(count));
                match kind {
                    0 => DiskIo {
                        op: IoOp::Flush,
                        lba: 0,
                        sectors: 0,
                    },
                    1..=4 => DiskIo {
                        op: IoOp::Write,
                        lba,
                        sectors: count,
                    },
                    _ => DiskIo {
                        op: IoOp::Read,
                        lba,
                        sectors: count,
                    },
                }
            })
            .collect()
    }

    fn write_data(tag: u64, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| {
                (tag.to_le_bytes()[0])
                    .wrapping_mul(31)
                    .wrapping_add(i.to_le_bytes()[0])
            })
            .collect()
    }

    #[test]
    fn ordered_out_of_order_completion_matches_the_sequential_model() {
        const SECTORS: u64 = 24;
        for seed in 1..=40u64 {
            let storage = MemStorage::reordering(SECTORS, seed);
            let mut queue = Ordered::new(storage.queue(&crate::Waker::new().unwrap()).unwrap());
            let pool = Arena::pool(64);
            let requests = workload(seed * 7919, 300, SECTORS);
            // The model: every request in arrival order against a plain vector.
            let mut model = vec![0u8; usize::try_from(SECTORS).unwrap() * SECTOR_SIZE];
            let mut expected_reads = std::collections::HashMap::new();
            let mut completions = Vec::new();
            for (tag, io) in (0u64..).zip(requests.iter().copied()) {
                let start = usize::try_from(io.byte_offset()).unwrap();
                let range = start..start + io.byte_len();
                match io.op {
                    IoOp::Write => model[range].copy_from_slice(&write_data(tag, io.byte_len())),
                    IoOp::Read => {
                        expected_reads.insert(tag, model[range].to_vec());
                    }
                    IoOp::Flush => {}
                }
                let mut frame = loop {
                    if let Some(frame) = pool.take() {
                        break frame;
                    }
                    // Every frame is in flight: complete some first.
                    queue.commit();
                    queue.reap(&mut completions);
                    check(&mut completions, &expected_reads);
                };
                if io.op == IoOp::Write {
                    let data = io.data_range();
                    frame.buffer_mut()[data].copy_from_slice(&write_data(tag, io.byte_len()));
                }
                queue.submit(Request { tag, io, frame }).unwrap();
                if tag % 5 == 4 {
                    queue.commit();
                    queue.reap(&mut completions);
                    check(&mut completions, &expected_reads);
                }
            }
            queue.drain(&mut completions);
            check(&mut completions, &expected_reads);
            assert_eq!(queue.in_flight(), 0);
            assert_eq!(storage.contents(), model, "seed {seed}: final contents");
        }
    }

    fn check(
        completions: &mut Vec<Completion>,
        expected: &std::collections::HashMap<u64, Vec<u8>>,
    ) {
        for completion in completions.drain(..) {
            assert_eq!(completion.result, Ok(()), "tag {}", completion.tag);
            if completion.io.op == IoOp::Read {
                let data = &completion.frame.buffer()[completion.io.data_range()];
                assert_eq!(
                    data,
                    &expected[&completion.tag][..],
                    "read tag {}",
                    completion.tag
                );
            }
        }
    }

    #[test]
    fn without_ordering_the_reordering_queue_shows_stale_reads() {
        // The same workload straight on the reordering queue: some read must differ from the
        // sequential model, or the test above could not fail.
        const SECTORS: u64 = 24;
        let mut stale = 0;
        for seed in 1..=40u64 {
            let storage = MemStorage::reordering(SECTORS, seed);
            let mut queue = storage.queue(&crate::Waker::new().unwrap()).unwrap();
            // Fewer requests than the queue's depth: all stay in flight until the drain.
            let pool = Arena::pool(250);
            let mut model = vec![0u8; usize::try_from(SECTORS).unwrap() * SECTOR_SIZE];
            let mut expected = std::collections::HashMap::new();
            for (tag, io) in (0u64..).zip(workload(seed * 7919, 250, SECTORS)) {
                let start = usize::try_from(io.byte_offset()).unwrap();
                let range = start..start + io.byte_len();
                let mut frame = pool.take().unwrap();
                match io.op {
                    IoOp::Write => {
                        let data = write_data(tag, io.byte_len());
                        model[range].copy_from_slice(&data);
                        frame.buffer_mut()[io.data_range()].copy_from_slice(&data);
                    }
                    IoOp::Read => {
                        expected.insert(tag, model[range].to_vec());
                    }
                    IoOp::Flush => {}
                }
                queue.submit(Request { tag, io, frame }).unwrap();
                if tag % 5 == 4 {
                    queue.commit();
                }
            }
            let mut completions = Vec::new();
            queue.drain(&mut completions);
            stale += completions
                .iter()
                .filter(|c| c.io.op == IoOp::Read)
                .filter(|c| c.frame.buffer()[c.io.data_range()] != expected[&c.tag][..])
                .count();
        }
        assert!(stale > 0, "the reordering queue never reordered a conflict");
    }
}
