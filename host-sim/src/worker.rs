//! The target's event loop: one thread per link, frames in batches through the engine, disk
//! work through the storage queues, replies out as soon as their I/O completes.
//!
//! Per turn a [`LinkWorker`]:
//!
//! 1. waits until the link has frames or a storage queue has completions (one wait on the
//!    link and the worker's [`Waker`]: `epoll_wait(2)` on Linux, through [`net::Waiter`]),
//!    unless there is work at hand (frames already in the ring); with busy polling
//!    ([`LinkWorker::with_busy_poll`]) it first spins on the link for up to that long;
//! 2. takes up to [`RECV_BATCH`] frames from the link and hands each to every export whose
//!    shelf.slot it names (wildcards included; a frame for several exports is copied for all
//!    but the last) through its [`Channel`]: replies that need no disk work are built at once,
//!    disk work goes to the export's storage queue;
//! 3. commits every queue (one system call per queue and batch where the back end batches),
//!    reaps what completed, builds those replies, and sends every reply of the turn with one
//!    call.
//!
//! Guarantees: replies are built in the frames their requests came in (no copy of sector
//! data); every reply leaves the turn its I/O completed in, while other I/O still waits; the
//! worker finishes and answers everything in flight (draining every queue) before it stops or
//! drops an export that a reload removed.
//!
//! Waiting costs one system call per turn, and none when frames already wait in the ring:
//! with nothing in flight the worker sleeps without a timeout (no timer armed), and whoever
//! changes its routes or stops it signals its waker ([`LinkWorker::waker`]); the waker is read
//! only when the wait said it was signalled. Each
//! turn's wake-up and service time go into the worker's [`WorkerLatency`].
//!
//! Several workers may serve one interface ([`LinkWorker::in_group`]): each has its own link in
//! one fan-out group that steers every initiator's frames to one worker, so the ordering rules
//! of `aoe_storage::ordered` hold for each initiator's requests; the engine state of an export
//! (config string, mask, reservations) is one `aoe_core::Target` behind the export's mutex. Only
//! the first worker announces. When the link fails, the first worker reopens it in a new group
//! and the others join that one.
//!
//! The MTU is re-read from the kernel for every Query Config (so the advertised sectors per
//! frame follow an MTU change) and once a second otherwise. A link that fails (interface
//! deleted, or down and reported so by the kernel), or that was missing or down when the
//! worker started ([`LinkWorker::waiting`]), is reopened by name once a second until it works;
//! then every export on it is announced again.
//!
//! Duplicate guard: with [`LinkShared::probe`], an export that starts on the link (also after
//! a reopen) is first probed for (`guard::Probe`): a broadcast Query Config to its shelf.slot,
//! answered by any other target that has it. Until the probe ends the export answers nothing;
//! if another MAC answered, it is not announced nor served on this link (logged, counted,
//! probed again every [`CONFLICT_RETRY`]) unless [`LinkShared::allow_duplicate`].

use crate::channel::{Channel, OnLink};
use crate::export::Export;
use crate::guard::{self, PROBE_WAIT, Probe};
use crate::latency::WorkerLatency;
use crate::metrics::{ExportOnLink, LinkMetrics};
use aoe_core::Port;
use aoe_core::wire::{self, aoe};
use aoe_net::{self as net, EthernetAddress, Frame, Link, LinkKind, LinkSpec, MacText, Membership};
use aoe_storage::Waker;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Frames taken from the link per turn.
pub const RECV_BATCH: usize = 64;

/// How long a wait lasts before the worker checks for stop requests and new routes.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How often a failed link is reopened.
const REOPEN_INTERVAL: Duration = Duration::from_secs(1);

/// How often the MTU is re-read when no Query Config asks for it.
const MTU_REFRESH: Duration = Duration::from_secs(1);

/// How often receive drops are checked and reported.
const DROP_REPORT: Duration = Duration::from_secs(10);

/// How often a worker looks at a probe in progress (or a follower at the leader's decisions)
/// when nothing else wakes it.
const PROBE_TICK: Duration = Duration::from_millis(50);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How often an export held back by a duplicate on the LAN is probed again.
pub const CONFLICT_RETRY: Duration = Duration::from_secs(10);

/// What a worker shares with the daemon besides its routes.
#[derive(Debug, Clone)]
pub struct LinkShared {
    /// The link's counters and its exports' states.
    pub metrics: Arc<LinkMetrics>,
    /// Probe for another target with the same shelf.slot before serving an export.
    pub probe: bool,
    /// Serve (with a warning) even when a probe found another target.
    pub allow_duplicate: bool,
    /// This worker announces and probes (the only one, or the first of a fan-out group); the
    /// others serve an export once the leader's state for it on the link says so.
    pub leader: bool,
    /// Query Config responses the other workers of the link received while the leader
    /// probes: the fan-out group may steer another target's answer to any worker.
    pub probe_answers: Arc<Mutex<Vec<Vec<u8>>>>,
}

/// Responses kept for the leader's probes at most (more would be a flood, not answers).
const PROBE_ANSWERS_KEPT: usize = 64;

impl LinkShared {
    /// No probing, counters of its own (tests, in-memory links).
    pub fn unguarded(name: &str) -> LinkShared {
        LinkShared {
            metrics: Arc::new(LinkMetrics::new(name)),
            probe: false,
            allow_duplicate: false,
            leader: true,
            probe_answers: Arc::default(),
        }
    }
}

/// The link of a worker whose interface is missing or down: every call fails as the interface
/// did, so the worker's reopen loop takes over.
struct Absent {
    name: String,
}

impl Link for Absent {
    fn name(&self) -> &str {
        &self.name
    }

    fn mac(&self) -> EthernetAddress {
        EthernetAddress([0; 6])
    }

    fn mtu(&self) -> Result<usize, net::NetError> {
        Err(net::NetError::NoSuchInterface(self.name.clone()))
    }

    fn recv(&mut self, _: &mut Vec<Frame>, _: usize) -> Result<usize, net::NetError> {
        Err(net::NetError::NoSuchInterface(self.name.clone()))
    }

    fn wait(&mut self, _: Option<Duration>) -> Result<bool, net::NetError> {
        Err(net::NetError::NoSuchInterface(self.name.clone()))
    }

    fn readiness_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }

    fn alloc(&mut self) -> Option<Frame> {
        None
    }

    fn send(&mut self, frames: &mut Vec<Frame>) -> Result<usize, net::NetError> {
        frames.clear();
        Err(net::NetError::NoSuchInterface(self.name.clone()))
    }

    fn set_buffer_bytes(&mut self, _: usize, _: usize) -> Result<(usize, usize), net::NetError> {
        Err(net::NetError::NoSuchInterface(self.name.clone()))
    }
}

/// The exports one link serves; the supervisor swaps the list, workers pick it up per turn.
#[derive(Debug, Default)]
pub struct Routes(Mutex<Arc<Vec<Arc<Export>>>>);

impl Routes {
    /// Replaces the list.
    pub fn set(&self, exports: Vec<Arc<Export>>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(exports);
    }

    /// The current list.
    pub fn get(&self) -> Arc<Vec<Arc<Export>>> {
        Arc::clone(&self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The fan-out group the workers of one interface share: its id, and a generation that the
/// first worker advances each time it reopens the link in a new group.
#[derive(Debug, Default)]
pub struct FanoutGroup(Mutex<(u64, u16)>);

impl FanoutGroup {
    /// A group with id `id`, generation 0.
    pub fn new(id: u16) -> FanoutGroup {
        FanoutGroup(Mutex::new((0, id)))
    }

    fn get(&self) -> (u64, u16) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, id: u16) -> u64 {
        let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *state = (state.0 + 1, id);
        state.0
    }
}

/// A worker's place in its interface's fan-out group.
#[derive(Debug)]
struct Member {
    group: Arc<FanoutGroup>,
    first: bool,
    /// The generation of the group this worker's link is in.
    generation: u64,
}

/// Counters a worker reports when it stops.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WorkerStats {
    /// Frames received.
    pub frames: u64,
    /// Replies sent.
    pub replies: u64,
    /// Frames the kernel dropped for lack of receive buffer or ring room.
    pub kernel_drops: u64,
    /// Requests dropped because every frame buffer was in use.
    pub pool_drops: u64,
}

/// Serves the exports in `routes` on one link until `stop` or `shutdown` is set.
pub struct LinkWorker {
    spec: LinkSpec,
    link: Box<dyn Link>,
    routes: Arc<Routes>,
    stop: Arc<AtomicBool>,
    shutdown: &'static AtomicBool,
    waker: Waker,
    current: Arc<Vec<Arc<Export>>>,
    channels: Vec<Channel>,
    rx: Vec<Frame>,
    replies: Vec<Frame>,
    /// Indexes of the channels a frame is for (kept to avoid allocating per frame).
    matches: Vec<usize>,
    mtu: usize,
    mtu_read: Instant,
    stats: WorkerStats,
    shared: LinkShared,
    /// The link could not be opened: start in the reopen loop.
    absent: bool,
    /// When a following worker last looked at the leader's states.
    followed: Instant,
    /// How long to spin on the link for frames before sleeping (zero: never).
    busy_poll: Duration,
    latency: Arc<WorkerLatency>,
    /// One wait for the link and the waker, registered once (made on first use and again
    /// after the link is reopened).
    waiter: Option<net::Waiter>,
    /// The back end to reopen the link with.
    kind: LinkKind,
    member: Option<Member>,
}

impl LinkWorker {
    /// A worker for `link`, opened from `spec` (which reopens it after a failure); call
    /// [`run`](Self::run) on its own thread.
    ///
    /// # Errors
    /// When the wake-up descriptor cannot be made.
    pub fn new(
        spec: LinkSpec,
        link: Box<dyn Link>,
        routes: Arc<Routes>,
        stop: Arc<AtomicBool>,
        shutdown: &'static AtomicBool,
    ) -> std::io::Result<LinkWorker> {
        let mtu = link.mtu().unwrap_or(1500);
        let name = spec.interface().to_owned();
        guard::register_own_mac(link.mac());
        Ok(LinkWorker {
            spec,
            link,
            routes,
            stop,
            shutdown,
            waker: Waker::new()?,
            current: Arc::new(Vec::new()),
            channels: Vec::new(),
            rx: Vec::with_capacity(RECV_BATCH),
            replies: Vec::with_capacity(4 * RECV_BATCH),
            matches: Vec::new(),
            mtu,
            mtu_read: Instant::now(),
            stats: WorkerStats::default(),
            shared: LinkShared::unguarded(&name),
            absent: false,
            followed: Instant::now(),
            busy_poll: Duration::ZERO,
            latency: Arc::new(WorkerLatency::default()),
            waiter: None,
            kind: LinkKind::Auto,
            member: None,
        })
    }

    /// A worker for `spec`, whose interface is missing or down now: it serves once the
    /// interface appears and comes up (checked once a second).
    ///
    /// # Errors
    /// When the wake-up descriptor cannot be made.
    pub fn waiting(
        spec: LinkSpec,
        routes: Arc<Routes>,
        stop: Arc<AtomicBool>,
        shutdown: &'static AtomicBool,
    ) -> std::io::Result<LinkWorker> {
        let name = spec.interface().to_owned();
        let mut worker = LinkWorker::new(spec, Box::new(Absent { name }), routes, stop, shutdown)?;
        worker.absent = true;
        Ok(worker)
    }

    /// Shares counters, and the probe settings, with the daemon.
    pub fn with_shared(mut self, shared: LinkShared) -> LinkWorker {
        self.shared = shared;
        self
    }

    /// Makes this worker one of several on its interface, its link (of back end `kind`) in
    /// fan-out group `group`; the `first` announces exports and starts a new group when the
    /// link must be reopened.
    #[must_use]
    pub fn in_group(mut self, kind: LinkKind, group: Arc<FanoutGroup>, first: bool) -> LinkWorker {
        self.kind = kind;
        self.member = Some(Member {
            group,
            first,
            generation: 0,
        });
        self
    }

    /// The back end to reopen the link with after a failure (default: automatic).
    #[must_use]
    pub fn with_kind(mut self, kind: LinkKind) -> LinkWorker {
        self.kind = kind;
        self
    }

    /// True for the worker that announces exports and probes for duplicates (the only one,
    /// or the first of a fan-out group); the others follow its decisions.
    fn announces(&self) -> bool {
        self.shared.leader
    }

    /// The stop flag (set it, then signal the [`waker`](Self::waker)).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Spins on the link for up to `spin` before each sleep (zero, the default: never):
    /// trades a core for the wake-up latency of a request that arrives within that time.
    #[must_use]
    pub fn with_busy_poll(mut self, spin: Duration) -> LinkWorker {
        self.busy_poll = spin;
        self
    }

    /// The worker's waker: signal it after setting the stop flag or changing the routes, so
    /// that a worker sleeping without a timeout looks at them.
    pub fn waker(&self) -> Waker {
        self.waker.clone()
    }

    /// The worker's latency histograms (filled while it runs).
    pub fn latency(&self) -> Arc<WorkerLatency> {
        Arc::clone(&self.latency)
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.shutdown.load(Ordering::Relaxed)
    }

    fn refresh_mtu(&mut self) {
        match self.link.mtu() {
            Ok(mtu) => {
                if mtu != self.mtu {
                    log::info!("{}: MTU is now {mtu}", self.link.name());
                }
                self.mtu = mtu;
            }
            Err(error) => log::warn!("{}: {error}", self.link.name()),
        }
        self.mtu_read = Instant::now();
    }

    fn port(&self) -> Port {
        Port::new(self.link.mac(), self.mtu)
    }

    /// Runs until told to stop; returns the counters.
    pub fn run(mut self) -> WorkerStats {
        let mut drops_checked = Instant::now();
        // Since when the link has been failing, and when a reopen was last tried.
        let mut broken = self.absent;
        let mut reopen_tried = Instant::now();
        if broken {
            self.mark_waiting();
        } else {
            self.shared.metrics.up.store(true, Ordering::Relaxed);
        }
        while !self.stopping() {
            if broken && reopen_tried.elapsed() >= REOPEN_INTERVAL {
                reopen_tried = Instant::now();
                broken = !self.reopen();
            }
            if broken {
                // Requests in flight still complete; their replies are lost with the link.
                self.turn_storage_only();
                std::thread::sleep(POLL_INTERVAL);
                continue;
            }
            self.pick_up_routes();
            if self.mtu_read.elapsed() > MTU_REFRESH {
                self.refresh_mtu();
            }
            if drops_checked.elapsed() > DROP_REPORT {
                self.report_drops();
                drops_checked = Instant::now();
            }
            self.check_probes();
            if let Err(error) = self.turn() {
                // The interface went down or away (the socket reports it once). Not fatal:
                // reopen it by name once a second until it is back, then announce again.
                log::error!("{error}; reopening it once a second until it is back");
                broken = true;
                reopen_tried = Instant::now();
                self.mark_waiting();
            }
        }
        // Answer everything in flight before stopping.
        for channel in &mut self.channels {
            channel.drain(&mut self.replies);
        }
        self.send_replies();
        let sent = Instant::now();
        for channel in &mut self.channels {
            channel.replies_sent(sent);
        }
        self.report_drops();
        self.stats.pool_drops = self.channels.iter().map(|c| c.pool_drops).sum();
        self.stats
    }

    /// One turn: wait, receive, dispatch, commit, reap, send.
    fn turn(&mut self) -> Result<(), net::NetError> {
        let in_flight = self.channels.iter().any(|channel| channel.in_flight() > 0);
        // Requests in flight on a queue without a waker complete on reap: do not sleep long.
        // A probe in progress, or (for a worker that follows the leader) an export not yet
        // served, needs a look now and then. Otherwise sleep until the link or the waker
        // (stop, new routes) says something.
        // A failover export's gate opens or closes from its manager's thread.
        let watching = self.channels.iter().any(|channel| {
            channel.export().is_failover()
                || match channel.on_link {
                    OnLink::Probing { .. } | OnLink::Conflict { .. } => true,
                    OnLink::New => !self.announces(),
                    OnLink::Serving => false,
                }
        });
        let timeout = if in_flight {
            Some(Duration::from_millis(1))
        } else {
            watching.then_some(PROBE_TICK)
        };
        // Frames already waiting in a ring (a multi-frame request, a burst): no poll(2).
        if !self.link.frames_known_ready() && !self.spin_for_frames() {
            let woken = match self.wait_for_work(timeout) {
                Ok(woken) => woken,
                Err(error) => {
                    return Err(net::NetError::Io {
                        interface: self.link.name().to_owned(),
                        step: "wait for frames",
                        source: error,
                    });
                }
            };
            if woken & 2 != 0 {
                self.waker.clear();
            }
        }
        let received = self.link.recv(&mut self.rx, RECV_BATCH)?;
        self.stats.frames += received as u64;
        self.shared.metrics.frames.add(received as u64);
        let held = (received > 0).then(Instant::now);
        if received > 0 {
            if let Some(arrival) = self.link.last_arrival()
                && let Ok(waited) = std::time::SystemTime::now().duration_since(arrival)
            {
                self.latency.wake_up.record(waited);
            }
            self.dispatch(held.unwrap_or_else(Instant::now));
        }
        for channel in &mut self.channels {
            channel.commit();
        }
        for channel in &mut self.channels {
            channel.reap(&mut self.replies);
        }
        let replied = !self.replies.is_empty();
        self.send_replies();
        let sent = Instant::now();
        for channel in &mut self.channels {
            channel.replies_sent(sent);
        }
        if let Some(held) = held
            && replied
        {
            self.latency.turn.record(held.elapsed());
        }
        self.announce_activations();
        Ok(())
    }

    /// One wait for the link (bit 0) and the waker (bit 1); see [`LinkWorker::turn`].
    fn wait_for_work(&mut self, timeout: Option<Duration>) -> std::io::Result<u32> {
        if self.waiter.is_none()
            && let Some(link_fd) = self.link.readiness_fd()
        {
            self.waiter = Some(net::Waiter::new(&[link_fd, self.waker.fd()])?);
        }
        match &self.waiter {
            Some(waiter) => waiter.wait(timeout),
            None => {
                // A link without a descriptor cannot be woken by the waker: nap briefly.
                self.link
                    .wait(Some(timeout.unwrap_or(POLL_INTERVAL)))
                    .map_err(|error| std::io::Error::other(error.to_string()))?;
                Ok(2)
            }
        }
    }

    /// Announces every export whose gate opened since the last turn (a failover gateway that
    /// just took over its image).
    fn announce_activations(&mut self) {
        for index in 0..self.channels.len() {
            let epoch = self.channels[index].export().gate().epoch();
            if epoch != self.channels[index].announced_epoch {
                self.channels[index].announced_epoch = epoch;
                let export = Arc::clone(self.channels[index].export());
                if export.serving() && self.announces() {
                    self.announce(&export);
                }
            }
        }
    }

    /// Busy polling: spins until the link has frames, at most `busy_poll`; true if it has.
    fn spin_for_frames(&mut self) -> bool {
        if self.busy_poll.is_zero() {
            return false;
        }
        let deadline = Instant::now() + self.busy_poll;
        loop {
            if self.link.has_frames() {
                return true;
            }
            if Instant::now() >= deadline || self.stopping() {
                return false;
            }
            std::hint::spin_loop();
        }
    }

    /// While the link is broken: let storage finish what it has (replies are dropped).
    fn turn_storage_only(&mut self) {
        for channel in &mut self.channels {
            channel.reap(&mut self.replies);
        }
        self.replies.clear();
    }

    /// Hands every received frame to the channels of the exports it is for (those serving on
    /// this link); answers to our probes go to the probes. `received` is when the batch came.
    fn dispatch(&mut self, received: Instant) {
        let mut port = self.port();
        let mut frames = std::mem::take(&mut self.rx);
        let mut own_macs = None;
        for frame in frames.drain(..) {
            let Some((major, minor, command)) = address_of(frame.as_slice()) else {
                continue;
            };
            if frame
                .as_slice()
                .get(14)
                .is_some_and(|flags| flags & 0x08 != 0)
            {
                // A response: never for an export, maybe for a probe (the leader's; the other
                // workers of the link pass Query Config answers on to it).
                if !self.announces() {
                    if command == aoe::Command::QueryConfig {
                        let mut answers = lock(&self.shared.probe_answers);
                        if answers.len() < PROBE_ANSWERS_KEPT {
                            answers.push(frame.as_slice().to_vec());
                        }
                    }
                    continue;
                }
                let ours = own_macs.get_or_insert_with(guard::own_macs);
                for channel in &mut self.channels {
                    if let OnLink::Probing { probe, .. } = &mut channel.on_link {
                        probe.observe(frame.as_slice(), ours);
                    }
                }
                continue;
            }
            if command == aoe::Command::QueryConfig {
                self.refresh_mtu();
                port = self.port();
            }
            self.matches.clear();
            for (index, channel) in self.channels.iter().enumerate() {
                // Only exports serving on this link, and a failover export only while it holds
                // its image (silent to discovery too until then).
                if channel.on_link == OnLink::Serving
                    && channel.export().answers(major, minor)
                    && channel.export().serving()
                {
                    self.matches.push(index);
                }
            }
            let Some((&last, others)) = self.matches.split_last() else {
                continue;
            };
            for &index in others {
                // A broadcast for several exports: each builds its reply in a copy.
                let Some(mut copy) = self.link.alloc() else {
                    continue;
                };
                copy.fill(frame.as_slice());
                self.channels[index].accept(
                    &port,
                    copy,
                    &mut *self.link,
                    &mut self.replies,
                    received,
                );
            }
            self.channels[last].accept(&port, frame, &mut *self.link, &mut self.replies, received);
        }
        self.rx = frames;
    }

    fn send_replies(&mut self) {
        if self.replies.is_empty() {
            return;
        }
        match self.link.send(&mut self.replies) {
            Ok(sent) => {
                self.stats.replies += sent as u64;
                self.shared.metrics.replies.add(sent as u64);
            }
            Err(error) => {
                self.shared.metrics.send_errors.add(1);
                log::warn!("{error}");
            }
        }
        self.replies.clear();
    }

    /// Marks every export routed here as waiting for the link.
    fn mark_waiting(&mut self) {
        self.shared.metrics.up.store(false, Ordering::Relaxed);
        for export in self.routes.get().iter() {
            self.shared
                .metrics
                .set_state(&export.spec().name(), ExportOnLink::Waiting);
        }
    }

    /// Starts serving `channel`'s export on this link: a probe first when the daemon asks for
    /// one, else the announcement at once.
    fn start(&mut self, index: usize) {
        let export = Arc::clone(self.channels[index].export());
        let spec = export.spec();
        // An export a reload reopened takes over an address already served on this link (a
        // link that failed marks its exports waiting, so they are probed when it is back).
        let replacing = self.shared.metrics.states().get(&spec.name())
            == Some(&ExportOnLink::Serving)
            && matches!(self.channels[index].on_link, OnLink::New);
        // A failover export's twin on the other gateway answers the same shelf.slot by design
        // (the image's lock lets one of them answer at a time): no probe for it.
        if !self.shared.probe || replacing || export.is_failover() {
            self.serve(index);
            return;
        }
        let probe = Probe::new(spec.shelf, spec.slot);
        self.send_probe(&probe);
        self.channels[index].on_link = OnLink::Probing {
            probe,
            started: Instant::now(),
            resent: false,
        };
        self.shared
            .metrics
            .set_state(&spec.name(), ExportOnLink::Probing);
    }

    fn send_probe(&mut self, probe: &Probe) {
        let Some(mut frame) = self.link.alloc() else {
            return;
        };
        let len = probe.query(self.link.mac(), frame.buffer_mut());
        frame.set_len(len);
        let mut batch = vec![frame];
        if let Err(error) = self.link.send(&mut batch) {
            log::warn!("{error}");
        }
    }

    fn serve(&mut self, index: usize) {
        let export = Arc::clone(self.channels[index].export());
        self.channels[index].on_link = OnLink::Serving;
        self.shared
            .metrics
            .set_state(&export.spec().name(), ExportOnLink::Serving);
        self.announce(&export);
    }

    /// Ends the probes that are due: serves their exports, or holds them back when another
    /// target answered; probes held-back exports again every [`CONFLICT_RETRY`].
    fn check_probes(&mut self) {
        if !self.announces() {
            self.follow_the_leader();
            return;
        }
        let answers = std::mem::take(&mut *lock(&self.shared.probe_answers));
        if !answers.is_empty() {
            let ours = guard::own_macs();
            for channel in &mut self.channels {
                if let OnLink::Probing { probe, .. } = &mut channel.on_link {
                    for answer in &answers {
                        probe.observe(answer, &ours);
                    }
                }
            }
        }
        for index in 0..self.channels.len() {
            let name = self.channels[index].export().spec().name();
            match &mut self.channels[index].on_link {
                OnLink::Probing {
                    probe,
                    started,
                    resent,
                } => {
                    let elapsed = started.elapsed();
                    if !*resent && elapsed >= PROBE_WAIT / 2 {
                        *resent = true;
                        let probe = probe.clone();
                        self.send_probe(&probe);
                        continue;
                    }
                    if elapsed < PROBE_WAIT {
                        continue;
                    }
                    if probe.others.is_empty() {
                        self.serve(index);
                        continue;
                    }
                    let others = probe.others_text();
                    let export = Arc::clone(self.channels[index].export());
                    export.metrics().duplicate_events.add(1);
                    if self.shared.allow_duplicate {
                        log::warn!(
                            "{name} on {}: another target answers {name} from {others}; serving \
                             anyway (--allow-duplicate): initiators may mix their data",
                            self.link.name()
                        );
                        self.serve(index);
                        continue;
                    }
                    log::error!(
                        "{name} on {}: another target answers {name} from {others}; not \
                         announcing or serving it here (two targets with one address corrupt \
                         initiators' data; give one another shelf.slot, or --allow-duplicate); \
                         probing again every {} s",
                        self.link.name(),
                        CONFLICT_RETRY.as_secs()
                    );
                    self.shared
                        .metrics
                        .set_state(&name, ExportOnLink::Conflict(others));
                    self.channels[index].on_link = OnLink::Conflict {
                        since: Instant::now(),
                    };
                }
                OnLink::Conflict { since } if since.elapsed() >= CONFLICT_RETRY => {
                    log::debug!("{name} on {}: probing again", self.link.name());
                    self.start(index);
                }
                OnLink::New | OnLink::Conflict { .. } | OnLink::Serving => {}
            }
        }
    }

    /// A worker that does not lead: serves each export exactly while the leader's state for it
    /// on this link is `Serving` (looked up only while one is not served, or once a second).
    fn follow_the_leader(&mut self) {
        let all_served = self
            .channels
            .iter()
            .all(|channel| channel.on_link == OnLink::Serving);
        if all_served && self.followed.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.followed = Instant::now();
        let states = self.shared.metrics.states();
        for channel in &mut self.channels {
            let serving =
                states.get(&channel.export().spec().name()) == Some(&ExportOnLink::Serving);
            channel.on_link = if serving {
                OnLink::Serving
            } else {
                OnLink::New
            };
        }
    }

    /// Opens the link again by name (after it failed); true on success. A new link starts
    /// with no exports picked up, so every export is announced again.
    fn reopen(&mut self) -> bool {
        let membership = match &self.member {
            None => Membership::Alone,
            Some(member) if member.first => Membership::NewGroup,
            Some(member) => {
                // Join the group the first worker made after the failure, once it exists.
                let (generation, id) = member.group.get();
                if generation <= member.generation {
                    return false;
                }
                Membership::Join(id)
            }
        };
        match net::open_target_member(&self.spec, self.kind, membership) {
            Ok(opened) => {
                log::info!(
                    "{}: {} ({})",
                    self.spec.interface(),
                    if self.absent { "is up" } else { "reopened" },
                    MacText(opened.link.mac())
                );
                guard::register_own_mac(opened.link.mac());
                if !self.absent {
                    self.shared.metrics.reopens.add(1);
                }
                self.absent = false;
                self.shared.metrics.up.store(true, Ordering::Relaxed);
                if let Some(member) = &mut self.member {
                    let id = opened.group.unwrap_or(0);
                    member.generation = match membership {
                        Membership::NewGroup => member.group.publish(id),
                        _ => member.group.get().0,
                    };
                }
                // The waiter holds the old link's descriptor: make a new one with the new link.
                self.waiter = None;
                self.link = opened.link;
                self.current = Arc::new(Vec::new());
                true
            }
            Err(error) => {
                log::debug!("{}: not yet: {error}", self.spec.interface());
                false
            }
        }
    }

    fn report_drops(&mut self) {
        let drops = self.link.take_drops();
        if drops > 0 {
            self.stats.kernel_drops += drops;
            self.shared.metrics.kernel_drops.add(drops);
            log::warn!(
                "{}: the kernel dropped {drops} frames for lack of receive buffer",
                self.link.name()
            );
        }
    }

    /// Takes a new export list: sizes the socket buffers for it, opens storage queues for new
    /// exports (draining those of removed ones) and announces new exports.
    fn pick_up_routes(&mut self) {
        let routes = self.routes.get();
        if Arc::ptr_eq(&routes, &self.current) {
            return;
        }
        let frames: usize = routes
            .iter()
            .map(|export| usize::from(export.spec().buffer_count))
            .sum();
        let bytes = net::buffer_bytes_for(frames.max(RECV_BATCH), self.mtu.max(1500));
        match self.link.set_buffer_bytes(bytes, bytes) {
            Ok((rx, _)) if rx > 0 && rx < bytes => log::warn!(
                "{}: receive buffer is {rx} bytes, {bytes} wanted for {frames} frames; \
                 raise net.core.rmem_max or run with CAP_NET_ADMIN",
                self.link.name()
            ),
            Ok((rx, tx)) => log::debug!(
                "{}: socket buffers rx {rx} tx {tx} bytes for {frames} frames",
                self.link.name()
            ),
            Err(error) => log::warn!("{error}"),
        }
        self.refresh_mtu();
        let mut old = std::mem::take(&mut self.channels);
        for export in routes.iter() {
            let kept = old
                .iter()
                .position(|channel| Arc::ptr_eq(channel.export(), export));
            let channel = match kept {
                Some(index) => old.swap_remove(index),
                None => match Channel::open(Arc::clone(export), &self.waker) {
                    Ok(channel) => channel,
                    Err(error) => {
                        log::error!("{error}; not served on {}", self.link.name());
                        continue;
                    }
                },
            };
            self.channels.push(channel);
        }
        // Removed exports: answer what they have in flight, then let them go.
        for mut channel in old {
            channel.drain(&mut self.replies);
            let name = channel.export().spec().name();
            if !routes.iter().any(|export| export.spec().name() == name) {
                self.shared.metrics.forget(&name);
            }
        }
        self.send_replies();
        let previous = std::mem::replace(&mut self.current, Arc::clone(&routes));
        for index in 0..self.channels.len() {
            let export = Arc::clone(self.channels[index].export());
            if !previous.iter().any(|old| Arc::ptr_eq(old, &export)) && self.announces() {
                self.start(index);
            }
        }
    }

    /// Sends the start-up Query Config reply (broadcast, or to each mask MAC); nothing while
    /// the export is silent (a failover standby).
    fn announce(&mut self, export: &Export) {
        if !export.serving() {
            return;
        }
        let port = self.port();
        let target = export.target();
        let destinations: Vec<EthernetAddress> = target.announcement_destinations().collect();
        let mut sent = Vec::new();
        for destination in destinations {
            let Some(mut frame) = self.link.alloc() else {
                log::warn!("{}: no free frame buffer to announce", self.link.name());
                return;
            };
            let Some(len) = target.announce(&port, destination, frame.buffer_mut()) else {
                log::warn!(
                    "{} on {}: MTU {} is too small to announce or serve",
                    export.spec().name(),
                    self.link.name(),
                    self.mtu
                );
                return;
            };
            frame.set_len(len);
            let mut batch = vec![frame];
            match self.link.send(&mut batch) {
                Ok(count) => {
                    self.shared.metrics.replies.add(count as u64);
                    sent.push(MacText(destination).to_string());
                }
                Err(error) => log::warn!("{error}"),
            }
        }
        log::info!(
            "{} on {} ({}, MTU {}, {} sectors per frame): announced to {}",
            export.spec().name(),
            self.link.name(),
            MacText(self.link.mac()),
            self.mtu,
            target.sectors_per_frame(&port),
            sent.join(", ")
        );
    }
}

/// Shelf, slot and command of an AoE frame, read through the engine's wire views; `None` for
/// a frame too short to carry them.
fn address_of(frame: &[u8]) -> Option<(u16, u8, aoe::Command)> {
    let header = wire::aoe_header(frame).ok()?;
    Some((header.major(), header.minor(), header.command()))
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::spec::{DEFAULT_BUFFER_COUNT, ExportSpec};
    use aoe_initiator::frame::{
        ATA_READ_EXT, ATA_WRITE_EXT, Address, pad, write_ata, write_header,
    };
    use aoe_net::mem::{self, MemLink};
    use aoe_storage::Storage;
    use aoe_storage::file::{DiskOptions, FileStorage};
    use aoe_storage::mem::MemStorage;
    use aoe_testkit::scratch::{Scratch, random_bytes};

    const TARGET: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
    const INITIATOR: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x99]);
    const TO: Address = Address {
        mac: TARGET,
        shelf: 9,
        slot: 4,
    };
    static NEVER: AtomicBool = AtomicBool::new(false);

    /// A worker serving e9.4 over `storage` on one end of an in-memory cable, on its own
    /// thread; returns the other end, the stop flag and the thread.
    fn serve(
        storage: Arc<dyn Storage>,
    ) -> (MemLink, Stopper, std::thread::JoinHandle<WorkerStats>) {
        serve_with(storage, Duration::ZERO)
    }

    /// As [`serve`], with busy polling of `spin`.
    fn serve_with(
        storage: Arc<dyn Storage>,
        spin: Duration,
    ) -> (MemLink, Stopper, std::thread::JoinHandle<WorkerStats>) {
        let (link, stop, thread, _) = serve_prepared(storage, spin, |_| {});
        (link, stop, thread)
    }

    /// As [`serve_with`], with `prepare` run on the export before the worker starts; the
    /// export too.
    fn serve_prepared(
        storage: Arc<dyn Storage>,
        spin: Duration,
        prepare: impl FnOnce(&Export),
    ) -> (
        MemLink,
        Stopper,
        std::thread::JoinHandle<WorkerStats>,
        Arc<Export>,
    ) {
        let spec = ExportSpec {
            shelf: 9,
            slot: 4,
            links: vec![LinkSpec::packet("mem-a")],
            file: "memory".into(),
            buffer_count: DEFAULT_BUFFER_COUNT,
            disk: DiskOptions::default(),
            mac_mask: vec![],
            state: Default::default(),
            ha: crate::spec::Ha::None,
        };
        let export = Arc::new(Export::with_storage(spec, storage).unwrap());
        prepare(&export);
        let routes = Arc::new(Routes::default());
        routes.set(vec![Arc::clone(&export)]);
        let (target_end, initiator_end) = mem::pair(TARGET, INITIATOR, 1500);
        let stop = Arc::new(AtomicBool::new(false));
        let worker = LinkWorker::new(
            LinkSpec::packet("mem-a"),
            Box::new(target_end),
            routes,
            Arc::clone(&stop),
            &NEVER,
        )
        .unwrap()
        .with_busy_poll(spin);
        let stopper = Stopper {
            flag: stop,
            waker: worker.waker(),
            latency: worker.latency(),
        };
        (
            initiator_end,
            stopper,
            std::thread::spawn(move || worker.run()),
            export,
        )
    }

    /// The stop flag and the waker that makes a sleeping worker look at it.
    struct Stopper {
        flag: Arc<AtomicBool>,
        waker: Waker,
        latency: Arc<WorkerLatency>,
    }

    impl Stopper {
        fn store(&self, value: bool, order: Ordering) {
            self.flag.store(value, order);
            self.waker.wake();
        }
    }

    fn ata(tag: u32, command: u8, lba: u64, data: &[u8], sectors: u8) -> Vec<u8> {
        let mut frame = vec![0u8; 36 + data.len().max(24)];
        let len = write_ata(&mut frame, INITIATOR, TO, tag, command, lba, sectors);
        frame[36..36 + data.len()].copy_from_slice(data);
        let len = pad(&mut frame, len + data.len());
        frame.truncate(len);
        frame
    }

    fn send(link: &mut MemLink, frames: &[Vec<u8>]) {
        let mut batch: Vec<Frame> = frames
            .iter()
            .map(|bytes| {
                let mut frame = link.alloc().unwrap();
                frame.fill(bytes);
                frame
            })
            .collect();
        link.send(&mut batch).unwrap();
    }

    /// Receives replies until `count` came (5 s at most), skipping announcements.
    fn replies(link: &mut MemLink, count: usize) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut out = Vec::new();
        let mut frames = Vec::new();
        while out.len() < count {
            assert!(
                Instant::now() < deadline,
                "{} of {count} replies",
                out.len()
            );
            link.wait(Some(Duration::from_millis(50))).unwrap();
            link.recv(&mut frames, 64).unwrap();
            for frame in frames.drain(..) {
                let tag = u32::from_be_bytes(frame.as_slice()[20..24].try_into().unwrap());
                if tag != 0 {
                    out.push(frame.as_slice().to_vec());
                }
            }
        }
        out
    }

    fn tag_of(reply: &[u8]) -> u32 {
        u32::from_be_bytes(reply[20..24].try_into().unwrap())
    }

    #[test]
    fn a_batch_runs_in_order_over_a_file_and_replies_in_place() {
        let scratch = Scratch::on_disk("worker");
        let path = scratch.sparse("disk.img", 1 << 20);
        let storage = Arc::new(FileStorage::open(&path, DiskOptions::default()).unwrap());
        let (mut link, stop, thread) = serve(storage);
        // One batch: 40 sequential writes, a read of sectors written earlier in the same batch,
        // a flush, a config query, and 20 sequential reads.
        let mut batch = Vec::new();
        for tag in 1..=40u32 {
            let data = random_bytes(1024, u64::from(tag));
            batch.push(ata(tag, ATA_WRITE_EXT, u64::from(tag - 1) * 2, &data, 2));
        }
        batch.push(ata(100, ATA_READ_EXT, 10, &[], 2));
        batch.push(ata(101, 0xEA, 0, &[], 0));
        let mut query = vec![0u8; 60];
        write_header(&mut query, INITIATOR, TO, aoe::Command::QueryConfig, 102);
        batch.push(query);
        for tag in 200..220u32 {
            batch.push(ata(tag, ATA_READ_EXT, u64::from(tag - 200) * 2, &[], 2));
        }
        send(&mut link, &batch);
        let got = replies(&mut link, batch.len());
        stop.store(true, Ordering::SeqCst);
        let stats = thread.join().unwrap();
        for reply in &got {
            let tag = tag_of(reply);
            assert_eq!(reply[14], 0x18, "tag {tag}: response, no AoE error");
            if reply[19] == 0 {
                assert_eq!(reply[27], 0x40, "tag {tag}: ATA status DRDY");
            }
            match tag {
                100 => assert_eq!(
                    reply[36..36 + 1024],
                    random_bytes(1024, 6)[..],
                    "read after write"
                ),
                200..220 => {
                    let seed = u64::from(tag - 200) + 1;
                    assert_eq!(
                        reply[36..36 + 1024],
                        random_bytes(1024, seed)[..],
                        "tag {tag}"
                    );
                }
                _ => {}
            }
        }
        let file = std::fs::read(&path).unwrap();
        for tag in 1..=40usize {
            let at = (tag - 1) * 1024;
            assert_eq!(file[at..at + 1024], random_bytes(1024, tag as u64)[..]);
        }
        assert_eq!(stats.frames, 63);
        assert_eq!(stats.replies, 63, "every request answered once");
    }

    #[test]
    fn out_of_order_storage_completions_keep_the_ordering_rules() {
        const SECTORS: u64 = 64;
        let storage = Arc::new(MemStorage::reordering(SECTORS, 7));
        let (mut link, stop, thread) = serve(Arc::clone(&storage) as Arc<dyn Storage>);
        // Batches of overlapping writes and reads on a small disk; the model applies them in
        // arrival order.
        let mut model = vec![0u8; usize::try_from(SECTORS).unwrap() * 512];
        let mut expected = std::collections::HashMap::new();
        let mut tag = 1u32;
        for round in 0..30u64 {
            let mut batch = Vec::new();
            for index in 0..16u64 {
                let lba = (round * 7 + index * 3) % (SECTORS - 2);
                let range = lba as usize * 512..lba as usize * 512 + 1024;
                if (round + index) % 3 == 0 {
                    expected.insert(tag, model[range].to_vec());
                    batch.push(ata(tag, ATA_READ_EXT, lba, &[], 2));
                } else {
                    let data = random_bytes(1024, u64::from(tag));
                    model[range].copy_from_slice(&data);
                    batch.push(ata(tag, ATA_WRITE_EXT, lba, &data, 2));
                }
                tag += 1;
            }
            send(&mut link, &batch);
            for reply in replies(&mut link, batch.len()) {
                assert_eq!(reply[27], 0x40, "tag {}: success", tag_of(&reply));
                if let Some(want) = expected.get(&tag_of(&reply)) {
                    assert_eq!(
                        &reply[36..36 + 1024],
                        &want[..],
                        "read tag {}",
                        tag_of(&reply)
                    );
                }
            }
        }
        stop.store(true, Ordering::SeqCst);
        thread.join().unwrap();
        assert_eq!(storage.contents(), model);
    }

    #[test]
    fn the_initiator_verifies_a_whole_export_through_the_worker() {
        verify_through_a_worker(Duration::ZERO);
    }

    #[test]
    fn a_busy_polling_worker_serves_the_same_and_records_its_turns() {
        verify_through_a_worker(Duration::from_micros(200));
    }

    fn verify_through_a_worker(spin: Duration) {
        let storage = Arc::new(MemStorage::reordering(2048, 3));
        let (link, stop, thread) = serve_with(storage, spin);
        let mut port = aoe_initiator::port::NetPort::with_link(Box::new(link)).unwrap();
        let cli = aoe_initiator::cli::Cli::parse(
            "verify -t 9.4 -i mem-b --timeout 5"
                .split_whitespace()
                .map(str::to_string),
        )
        .unwrap();
        let mut out = Vec::new();
        aoe_initiator::cli::run_on(&cli, &mut port, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("sectors 0..2048") && text.contains("all match"),
            "{text}"
        );
        stop.store(true, Ordering::SeqCst);
        let stats = thread.join().unwrap();
        assert_eq!(stats.frames, stats.replies, "every request answered");
    }

    #[test]
    fn turns_go_into_the_latency_histogram() {
        let storage = Arc::new(MemStorage::reordering(64, 1));
        let (mut link, stop, thread) = serve(storage);
        let batch: Vec<Vec<u8>> = (1..=8u32)
            .map(|tag| ata(tag, ATA_READ_EXT, u64::from(tag), &[], 1))
            .collect();
        send(&mut link, &batch);
        assert_eq!(replies(&mut link, 8).len(), 8);
        stop.store(true, Ordering::SeqCst);
        thread.join().unwrap();
        // At least one turn held frames and sent replies; a link without receive timestamps
        // (this in-memory cable) records no wake-ups.
        let turns = stop.latency.turn.count();
        assert!((1..=8).contains(&turns), "{turns} turns");
        assert!(stop.latency.turn.quantile(1.0).unwrap() < Duration::from_secs(5));
        assert_eq!(stop.latency.wake_up.count(), 0);
    }

    #[test]
    fn a_closed_gate_is_silent_even_to_discovery_and_an_opened_one_announces_and_serves() {
        let storage = Arc::new(MemStorage::new(64));
        let (mut link, stop, thread, export) = serve_prepared(storage, Duration::ZERO, |export| {
            export.gate().close_fenced()
        });
        let mut query = vec![0u8; 60];
        let broadcast = Address {
            mac: aoe_initiator::frame::BROADCAST,
            shelf: 0xFFFF,
            slot: 0xFF,
        };
        write_header(
            &mut query,
            INITIATOR,
            broadcast,
            aoe::Command::QueryConfig,
            7,
        );
        send(&mut link, &[query.clone(), ata(8, ATA_READ_EXT, 0, &[], 1)]);
        let mut frames = Vec::new();
        let deadline = Instant::now() + Duration::from_millis(400);
        while Instant::now() < deadline {
            link.wait(Some(Duration::from_millis(50))).unwrap();
            link.recv(&mut frames, 64).unwrap();
        }
        assert!(
            frames.is_empty(),
            "a closed gate answered {} frames",
            frames.len()
        );

        // Opened (a failover gateway took its image over): announced at once, then served.
        export.gate().open();
        let deadline = Instant::now() + Duration::from_secs(5);
        let announced = loop {
            assert!(
                Instant::now() < deadline,
                "no announcement after the gate opened"
            );
            link.wait(Some(Duration::from_millis(50))).unwrap();
            link.recv(&mut frames, 64).unwrap();
            if let Some(frame) = frames.drain(..).find(|f| f.as_slice()[19] == 1) {
                break frame.as_slice().to_vec();
            }
        };
        assert_eq!(
            &announced[0..6],
            &[0xFF; 6],
            "the announcement is a broadcast"
        );
        send(&mut link, &[ata(9, ATA_READ_EXT, 0, &[], 1)]);
        let got = replies(&mut link, 1);
        assert_eq!(tag_of(&got[0]), 9);
        assert_eq!(got[0][27], 0x40, "answered with DRDY");
        stop.store(true, Ordering::SeqCst);
        thread.join().unwrap();
    }
}
