//! The target's event loop: one thread per link, frames in batches through the engine, disk
//! work through the storage queues, replies out as soon as their I/O completes.
//!
//! Per turn a [`LinkWorker`]:
//!
//! 1. waits until the link has frames or a storage queue has completions (one `poll(2)` on the
//!    link and the worker's [`Waker`]), unless there is work at hand;
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
//! The MTU is re-read from the kernel for every Query Config (so the advertised sectors per
//! frame follow an MTU change) and once a second otherwise. A link that fails (interface
//! deleted, or down and reported so by the kernel) is reopened by name once a second until it
//! works again; then every export on it is announced again.

use crate::channel::Channel;
use crate::export::Export;
use aoe_core::Port;
use aoe_core::wire::{self, aoe};
use aoe_net::{self as net, EthernetAddress, Frame, Link, LinkSpec, MacText};
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
        })
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
        let mut broken = false;
        let mut reopen_tried = Instant::now();
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
            if let Err(error) = self.turn() {
                // The interface went down or away (the socket reports it once). Not fatal:
                // reopen it by name once a second until it is back, then announce again.
                log::error!("{error}; reopening it once a second until it is back");
                broken = true;
                reopen_tried = Instant::now();
            }
        }
        // Answer everything in flight before stopping.
        for channel in &mut self.channels {
            channel.drain(&mut self.replies);
        }
        self.send_replies();
        self.report_drops();
        self.stats.pool_drops = self.channels.iter().map(|c| c.pool_drops).sum();
        self.stats
    }

    /// One turn: wait, receive, dispatch, commit, reap, send.
    fn turn(&mut self) -> Result<(), net::NetError> {
        let in_flight = self.channels.iter().any(|channel| channel.in_flight() > 0);
        // Requests in flight on a queue without a waker complete on reap: do not sleep long.
        let timeout = if in_flight {
            Duration::from_millis(1).min(POLL_INTERVAL)
        } else {
            POLL_INTERVAL
        };
        match self.link.readiness_fd() {
            Some(link_fd) => {
                let fds = [link_fd, self.waker.fd()];
                net::wait_readable_any(&fds, Some(timeout)).map_err(|error| net::NetError::Io {
                    interface: self.link.name().to_owned(),
                    step: "wait for frames",
                    source: error,
                })?;
            }
            None => {
                self.link.wait(Some(timeout))?;
            }
        }
        self.waker.clear();
        let received = self.link.recv(&mut self.rx, RECV_BATCH)?;
        self.stats.frames += received as u64;
        if received > 0 {
            self.dispatch();
        }
        for channel in &mut self.channels {
            channel.commit();
        }
        for channel in &mut self.channels {
            channel.reap(&mut self.replies);
        }
        self.send_replies();
        self.announce_activations();
        Ok(())
    }

    /// Announces every export whose gate opened since the last turn (a failover gateway that
    /// just took over its image).
    fn announce_activations(&mut self) {
        for index in 0..self.channels.len() {
            let epoch = self.channels[index].export().gate().epoch();
            if epoch != self.channels[index].announced_epoch {
                self.channels[index].announced_epoch = epoch;
                let export = Arc::clone(self.channels[index].export());
                if export.serving() {
                    self.announce(&export);
                }
            }
        }
    }

    /// While the link is broken: let storage finish what it has (replies are dropped).
    fn turn_storage_only(&mut self) {
        for channel in &mut self.channels {
            channel.reap(&mut self.replies);
        }
        self.replies.clear();
    }

    /// Hands every received frame to the channels of the exports it is for.
    fn dispatch(&mut self) {
        let mut port = self.port();
        let mut frames = std::mem::take(&mut self.rx);
        for frame in frames.drain(..) {
            let Some((major, minor, command)) = address_of(frame.as_slice()) else {
                continue;
            };
            if command == aoe::Command::QueryConfig {
                self.refresh_mtu();
                port = self.port();
            }
            self.matches.clear();
            for (index, channel) in self.channels.iter().enumerate() {
                // A failover export is silent (to discovery too) until it holds its image.
                if channel.export().answers(major, minor) && channel.export().serving() {
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
                self.channels[index].accept(&port, copy, &mut *self.link, &mut self.replies);
            }
            self.channels[last].accept(&port, frame, &mut *self.link, &mut self.replies);
        }
        self.rx = frames;
    }

    fn send_replies(&mut self) {
        if self.replies.is_empty() {
            return;
        }
        match self.link.send(&mut self.replies) {
            Ok(sent) => self.stats.replies += sent as u64,
            Err(error) => log::warn!("{error}"),
        }
        self.replies.clear();
    }

    /// Opens the link again by name (after it failed); true on success. A new link starts
    /// with no exports picked up, so every export is announced again.
    fn reopen(&mut self) -> bool {
        match net::open_target(&self.spec) {
            Ok(link) => {
                log::info!(
                    "{}: reopened ({})",
                    self.spec.interface(),
                    MacText(link.mac())
                );
                self.link = link;
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
        }
        self.send_replies();
        let previous = std::mem::replace(&mut self.current, Arc::clone(&routes));
        for export in routes.iter() {
            if !previous.iter().any(|old| Arc::ptr_eq(old, export)) {
                self.announce(export);
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
                Ok(_) => sent.push(MacText(destination).to_string()),
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
    ) -> (
        MemLink,
        Arc<AtomicBool>,
        std::thread::JoinHandle<WorkerStats>,
    ) {
        let (link, stop, thread, _) = serve_with(storage, |_| {});
        (link, stop, thread)
    }

    /// `serve`, with `prepare` run on the export before the worker starts; the export too.
    fn serve_with(
        storage: Arc<dyn Storage>,
        prepare: impl FnOnce(&Export),
    ) -> (
        MemLink,
        Arc<AtomicBool>,
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
        .unwrap();
        (
            initiator_end,
            stop,
            std::thread::spawn(move || worker.run()),
            export,
        )
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
        let storage = Arc::new(MemStorage::reordering(2048, 3));
        let (link, stop, thread) = serve(storage);
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
        thread.join().unwrap();
    }

    #[test]
    fn a_closed_gate_is_silent_even_to_discovery_and_an_opened_one_announces_and_serves() {
        let storage = Arc::new(MemStorage::new(64));
        let (mut link, stop, thread, export) =
            serve_with(storage, |export| export.gate().close_fenced());
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
