//! The ordering rules AoE initiators rely on, added once on top of any [`IoQueue`].
//!
//! A back end may run requests in flight in any order. [`Ordered`] holds a request back until
//! nothing it conflicts with is in flight, so that the export behaves as if requests ran one
//! after another in arrival order wherever the order can be seen:
//!
//! * A READ that overlaps an earlier WRITE still in flight waits for it: it sees the new data.
//! * Overlapping WRITEs land in arrival order (the later waits for the earlier).
//! * A WRITE that overlaps an earlier READ still in flight waits for it: the READ sees the old
//!   data.
//! * A FLUSH waits until every WRITE that arrived before it has completed, so it covers every
//!   WRITE acknowledged before it (and the earlier ones still in flight).
//! * A request that arrived after a held-back request it must follow is held back too, so
//!   held-back requests keep their arrival order among themselves. (WRITEs do not wait for an
//!   earlier FLUSH: it need not cover them.)
//!
//! Requests that conflict with nothing go to the back end at once; non-overlapping requests
//! run in parallel. With at most a few hundred requests in flight per export, conflicts are
//! found by scanning the in-flight list, which allocates nothing after start-up.

use crate::{Completion, IoOp, IoQueue, Request};
use std::collections::VecDeque;
use std::time::Duration;

/// What is known of a request in flight or held back, to find conflicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Extent {
    tag: u64,
    op: IoOp,
    /// First sector and one past the last (empty for a flush).
    start: u64,
    end: u64,
}

impl Extent {
    fn of(request: &Request) -> Extent {
        let start = request.io.lba;
        Extent {
            tag: request.tag,
            op: request.io.op,
            start,
            end: start + u64::from(request.io.sectors),
        }
    }

    fn overlaps(&self, other: &Extent) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// True if `self` (arriving later) must wait for `earlier`.
    fn must_follow(&self, earlier: &Extent) -> bool {
        match (self.op, earlier.op) {
            (IoOp::Flush, IoOp::Write) => true,
            (IoOp::Write, IoOp::Flush) => false,
            (_, IoOp::Flush) | (IoOp::Flush, _) => false,
            (IoOp::Read, IoOp::Read) => false,
            _ => self.overlaps(earlier),
        }
    }
}

/// An [`IoQueue`] with the ordering rules of the [module docs](self) on top of another.
pub struct Ordered {
    inner: Box<dyn IoQueue>,
    in_flight: Vec<Extent>,
    held: VecDeque<Request>,
    /// Requests the inner queue refused for lack of room, resubmitted first.
    refused: VecDeque<Request>,
    scratch: Vec<Completion>,
}

impl std::fmt::Debug for Ordered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ordered")
            .field("in_flight", &self.in_flight.len())
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

impl Ordered {
    /// Orders the requests given to `inner`.
    pub fn new(inner: Box<dyn IoQueue>) -> Ordered {
        Ordered {
            inner,
            in_flight: Vec::with_capacity(256),
            held: VecDeque::with_capacity(64),
            refused: VecDeque::new(),
            scratch: Vec::with_capacity(256),
        }
    }

    /// Requests held back now (waiting for a conflicting one to complete).
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// True if `extent` conflicts with a request in flight or one held back before it.
    fn blocked(&self, extent: &Extent, held_before: usize) -> bool {
        self.in_flight
            .iter()
            .any(|earlier| extent.must_follow(earlier))
            || self
                .held
                .iter()
                .take(held_before)
                .any(|earlier| extent.must_follow(&Extent::of(earlier)))
    }

    /// Passes `request` to the inner queue (or keeps it for later if that is full).
    fn pass(&mut self, request: Request) {
        let extent = Extent::of(&request);
        self.in_flight.push(extent);
        if let Err(request) = self.inner.submit(request) {
            self.refused.push_back(request);
        }
    }

    /// Moves held-back requests that no longer conflict to the inner queue, in order.
    fn release(&mut self) {
        while let Some(request) = self.refused.pop_front() {
            if let Err(request) = self.inner.submit(request) {
                self.refused.push_front(request);
                return;
            }
        }
        let mut index = 0;
        while index < self.held.len() {
            let extent = Extent::of(&self.held[index]);
            if self.blocked(&extent, index) {
                index += 1;
                continue;
            }
            if let Some(request) = self.held.remove(index) {
                self.pass(request);
            }
        }
    }
}

impl IoQueue for Ordered {
    fn submit(&mut self, request: Request) -> Result<(), Request> {
        let extent = Extent::of(&request);
        if self.blocked(&extent, self.held.len()) {
            self.held.push_back(request);
        } else {
            self.pass(request);
        }
        Ok(())
    }

    fn commit(&mut self) {
        self.inner.commit();
    }

    fn reap(&mut self, completions: &mut Vec<Completion>) -> usize {
        let mut reaped = 0;
        loop {
            let count = self.inner.reap(&mut self.scratch);
            if count == 0 {
                return reaped;
            }
            for completion in self.scratch.drain(..) {
                if let Some(index) = self.in_flight.iter().position(|e| e.tag == completion.tag) {
                    self.in_flight.swap_remove(index);
                }
                completions.push(completion);
                reaped += 1;
            }
            // Completions may unblock held-back requests; hand them on and let a synchronous
            // back end run them now, so one reap finishes all it can.
            let before = self.held.len() + self.refused.len();
            self.release();
            if self.held.len() + self.refused.len() == before {
                return reaped;
            }
            self.inner.commit();
        }
    }

    fn in_flight(&self) -> usize {
        self.inner.in_flight() + self.held.len() + self.refused.len()
    }

    fn wait(&mut self, timeout: Duration) -> bool {
        self.inner.wait(timeout)
    }
}
