//! An NBD client behind the storage seam: an export of an NBD server (`qemu-nbd`, `nbdkit`)
//! as an AoE disk.
//!
//! `nbd+unix:///EXPORT?socket=PATH` and `nbd://HOST[:PORT]/EXPORT` ([`NbdAddress`], the NBD URI
//! forms) name the export. One connection per export, shared by every worker's queue (servers
//! such as `qemu-nbd` take one client by default, and without `CAN_MULTI_CONN` a flush on one
//! connection would not cover writes on another): workers write requests under a lock, in
//! one `write` each; one reader thread per connection reads replies in whatever order the
//! server sends them and matches them to requests by cookie.
//!
//! Our own code rather than a crate: `nbd` (0.3) is a blocking client with one request at a
//! time and no structured replies, and the `libnbd` bindings need a newer libnbd than Debian 12
//! ships. The protocol subset is small: the fixed newstyle handshake (`NBD_OPT_STRUCTURED_REPLY`,
//! then `NBD_OPT_GO` with the block-size info, falling back to `NBD_OPT_EXPORT_NAME` for old
//! servers), READ, WRITE (with FUA), FLUSH, and simple and structured replies.
//!
//! Guarantees, besides those of the [seam](crate):
//!
//! * **Memory.** A READ's frame sits in the connection's table of requests in flight before
//!   the request is sent; the reader thread takes it out, reads the data straight into the
//!   reply at octet 36 and posts the completion. A WRITE's data is sent from its frame by the
//!   worker before the frame is put in the table; a reply that comes first is kept until then.
//!   No `unsafe`.
//! * **Durability.** A WRITE completes `Ok` only when the server said the data is on stable
//!   storage: sent with `NBD_CMD_FLAG_FUA` when the server offers FUA, else followed by an
//!   `NBD_CMD_FLUSH` before it completes (one flush covers every write that completed before
//!   it was sent). A server that offers neither is refused for writable exports (serve it with
//!   `-r`): nothing could make a write durable, and we do not pretend.
//! * **Many in flight**: up to [`QUEUE_DEPTH`] requests per queue, replies in any order.
//! * **A server that goes away** (crash, restart, socket closed): every request in flight and
//!   every request while it is away completes with [`ErrorKind::NotReady`] (the initiator gets
//!   an ATA error, never an ACK for a write that was not stored), and the reader connects again
//!   every half second; when the server is back, requests succeed again. A new connection to an
//!   export of another size is refused (the export keeps failing) rather than served wrongly.

use crate::{
    Capabilities, Completion, Durability, IoError, IoOp, IoQueue, Request, Storage, Waker,
};
use aoe_core::disk::{ErrorKind, SECTOR_SIZE};
use aoe_net::Frame;
use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Requests one queue keeps in flight.
pub const QUEUE_DEPTH: usize = 128;

/// The IANA port of NBD.
pub const DEFAULT_PORT: u16 = 10809;

/// How often a lost connection is tried again.
const RECONNECT_INTERVAL: Duration = Duration::from_millis(500);

/// A worker blocked this long writing a request (a server that stopped reading) gives the
/// connection up instead of stalling its link forever.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

// The protocol's numbers (NetworkBlockDevice's proto.md).
const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
const OPTION_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
const REQUEST_MAGIC: u32 = 0x2560_9513;
const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;
const FLAG_FIXED_NEWSTYLE: u16 = 1 << 0;
const FLAG_NO_ZEROES: u16 = 1 << 1;
const OPT_EXPORT_NAME: u32 = 1;
const OPT_GO: u32 = 7;
const OPT_STRUCTURED_REPLY: u32 = 8;
const REP_ACK: u32 = 1;
const REP_INFO: u32 = 3;
const REP_ERR_UNSUP: u32 = (1 << 31) + 1;
const REP_ERR_UNKNOWN: u32 = (1 << 31) + 6;
const INFO_EXPORT: u16 = 0;
const INFO_BLOCK_SIZE: u16 = 3;
/// Transmission flags.
const TFLAG_READ_ONLY: u16 = 1 << 1;
const TFLAG_SEND_FLUSH: u16 = 1 << 2;
const TFLAG_SEND_FUA: u16 = 1 << 3;
const CMD_READ: u16 = 0;
const CMD_WRITE: u16 = 1;
const CMD_DISC: u16 = 2;
const CMD_FLUSH: u16 = 3;
const CMD_FLAG_FUA: u16 = 1 << 0;
const REPLY_FLAG_DONE: u16 = 1 << 0;
const REPLY_TYPE_NONE: u16 = 0;
const REPLY_TYPE_OFFSET_DATA: u16 = 1;
const REPLY_TYPE_OFFSET_HOLE: u16 = 2;
const REPLY_TYPE_ERROR_BIT: u16 = 1 << 15;

/// Where the NBD server is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Transport {
    /// A unix socket.
    Unix(PathBuf),
    /// TCP to host and port.
    Tcp(String, u16),
}

/// An NBD export, from its URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NbdAddress {
    /// How to reach the server.
    pub transport: Transport,
    /// The export's name (empty: the server's default).
    pub export: String,
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text
                .get(index + 1..index + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad %-escape in {text:?}"))?;
            out.push(hex);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{text:?} is not UTF-8 once decoded"))
}

impl NbdAddress {
    /// True if `text` is an NBD URI (`nbd://`, `nbd+unix://`).
    pub fn is_nbd(text: &str) -> bool {
        text.starts_with("nbd://") || text.starts_with("nbd+unix://")
    }

    /// Parses `nbd+unix:///EXPORT?socket=PATH` or `nbd://HOST[:PORT][/EXPORT]`.
    ///
    /// # Errors
    /// A sentence naming what is wrong.
    pub fn parse(text: &str) -> Result<NbdAddress, String> {
        if let Some(rest) = text.strip_prefix("nbd+unix://") {
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            let export = path.strip_prefix('/').ok_or_else(|| {
                format!("{text:?}: expected nbd+unix:///EXPORT?socket=PATH (no host)")
            })?;
            let mut socket = None;
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                match pair.split_once('=') {
                    Some(("socket", value)) if !value.is_empty() => {
                        socket = Some(PathBuf::from(percent_decode(value)?));
                    }
                    _ => return Err(format!("{text:?}: unknown or empty query {pair:?}")),
                }
            }
            let socket = socket.ok_or_else(|| format!("{text:?}: ?socket=PATH is missing"))?;
            return Ok(NbdAddress {
                transport: Transport::Unix(socket),
                export: percent_decode(export)?,
            });
        }
        let rest = text
            .strip_prefix("nbd://")
            .ok_or_else(|| format!("{text:?} is not an nbd:// or nbd+unix:// URI"))?;
        if rest.contains('?') {
            return Err(format!("{text:?}: nbd:// takes no query"));
        }
        let (authority, export) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{text:?}: unclosed [ in the host"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("{text:?}: no host"));
        }
        let port = match port {
            Some(port) => port
                .parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{text:?}: port {port:?} is not 1..65535"))?,
            None => DEFAULT_PORT,
        };
        Ok(NbdAddress {
            transport: Transport::Tcp(host.to_owned(), port),
            export: percent_decode(export)?,
        })
    }
}

impl fmt::Display for NbdAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.transport {
            Transport::Unix(path) => {
                write!(f, "nbd+unix:///{}?socket={}", self.export, path.display())
            }
            Transport::Tcp(host, port) if host.contains(':') => {
                write!(f, "nbd://[{host}]:{port}/{}", self.export)
            }
            Transport::Tcp(host, port) => write!(f, "nbd://{host}:{port}/{}", self.export),
        }
    }
}

/// A connected socket of either kind.
#[derive(Debug)]
enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn connect(transport: &Transport) -> io::Result<Stream> {
        match transport {
            Transport::Unix(path) => UnixStream::connect(path).map(Stream::Unix),
            Transport::Tcp(host, port) => {
                let stream = TcpStream::connect((host.as_str(), *port))?;
                stream.set_nodelay(true)?;
                Ok(Stream::Tcp(stream))
            }
        }
    }

    fn try_clone(&self) -> io::Result<Stream> {
        match self {
            Stream::Unix(s) => s.try_clone().map(Stream::Unix),
            Stream::Tcp(s) => s.try_clone().map(Stream::Tcp),
        }
    }

    fn shutdown(&self) {
        let _ = match self {
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
        };
    }

    fn set_timeouts(&self, read: Option<Duration>, write: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => {
                s.set_read_timeout(read)?;
                s.set_write_timeout(write)
            }
            Stream::Tcp(s) => {
                s.set_read_timeout(read)?;
                s.set_write_timeout(write)
            }
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write_vectored(bufs),
            Stream::Tcp(s) => s.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What the handshake learnt about the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportInfo {
    /// Size in octets.
    pub size: u64,
    /// Transmission flags.
    pub flags: u16,
    /// The server sends structured replies.
    pub structured: bool,
    /// The server's minimum block size (1 when it did not say).
    pub min_block: u32,
}

impl ExportInfo {
    /// The server takes `NBD_CMD_FLAG_FUA`.
    pub fn fua(&self) -> bool {
        self.flags & TFLAG_SEND_FUA != 0
    }

    /// The server takes `NBD_CMD_FLUSH`.
    pub fn flush(&self) -> bool {
        self.flags & TFLAG_SEND_FLUSH != 0
    }

    /// The export is read-only.
    pub fn read_only(&self) -> bool {
        self.flags & TFLAG_READ_ONLY != 0
    }
}

fn read_u16(stream: &mut impl Read) -> io::Result<u16> {
    let mut b = [0; 2];
    stream.read_exact(&mut b)?;
    Ok(u16::from_be_bytes(b))
}

fn read_u32(stream: &mut impl Read) -> io::Result<u32> {
    let mut b = [0; 4];
    stream.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

fn read_u64(stream: &mut impl Read) -> io::Result<u64> {
    let mut b = [0; 8];
    stream.read_exact(&mut b)?;
    Ok(u64::from_be_bytes(b))
}

fn skip(stream: &mut impl Read, mut len: u64) -> io::Result<()> {
    let mut sink = [0u8; 512];
    while len > 0 {
        let chunk = usize::try_from(len.min(sink.len() as u64)).unwrap_or(sink.len());
        stream.read_exact(&mut sink[..chunk])?;
        len -= chunk as u64;
    }
    Ok(())
}

fn send_option(stream: &mut impl Write, option: u32, data: &[u8]) -> io::Result<()> {
    let mut message = Vec::with_capacity(16 + data.len());
    message.extend_from_slice(&IHAVEOPT.to_be_bytes());
    message.extend_from_slice(&option.to_be_bytes());
    message.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes());
    message.extend_from_slice(data);
    stream.write_all(&message)
}

/// One option reply: (type, data).
fn read_option_reply(stream: &mut impl Read, option: u32) -> Result<(u32, Vec<u8>), String> {
    let io = |e: io::Error| format!("the handshake broke off: {e}");
    if read_u64(stream).map_err(io)? != OPTION_REPLY_MAGIC {
        return Err("the server sent a bad option reply".into());
    }
    let replied = read_u32(stream).map_err(io)?;
    let kind = read_u32(stream).map_err(io)?;
    let len = read_u32(stream).map_err(io)?;
    if replied != option || len > 64 << 10 {
        return Err("the server's option reply does not match the option".into());
    }
    let mut data = vec![0; len as usize];
    stream.read_exact(&mut data).map_err(io)?;
    Ok((kind, data))
}

/// The fixed newstyle handshake on `stream` for `export`.
fn handshake(stream: &mut Stream, export: &str) -> Result<ExportInfo, String> {
    let io = |e: io::Error| format!("the handshake broke off: {e}");
    if read_u64(stream).map_err(io)? != NBDMAGIC {
        return Err("this is not an NBD server (no NBDMAGIC)".into());
    }
    if read_u64(stream).map_err(io)? != IHAVEOPT {
        return Err("the server speaks only the oldstyle handshake; newstyle is needed".into());
    }
    let server_flags = read_u16(stream).map_err(io)?;
    if server_flags & FLAG_FIXED_NEWSTYLE == 0 {
        return Err("the server does not offer the fixed newstyle handshake".into());
    }
    let no_zeroes = server_flags & FLAG_NO_ZEROES != 0;
    let client_flags = u32::from(FLAG_FIXED_NEWSTYLE) | if no_zeroes { 2 } else { 0 };
    stream.write_all(&client_flags.to_be_bytes()).map_err(io)?;

    send_option(stream, OPT_STRUCTURED_REPLY, &[]).map_err(io)?;
    let structured = loop {
        let (kind, _) = read_option_reply(stream, OPT_STRUCTURED_REPLY)?;
        if kind == REP_ACK {
            break true;
        }
        if kind & (1 << 31) != 0 {
            break false;
        }
    };

    let name = export.as_bytes();
    let mut go = Vec::with_capacity(8 + name.len());
    go.extend_from_slice(&u32::try_from(name.len()).unwrap_or(u32::MAX).to_be_bytes());
    go.extend_from_slice(name);
    go.extend_from_slice(&1u16.to_be_bytes());
    go.extend_from_slice(&INFO_BLOCK_SIZE.to_be_bytes());
    send_option(stream, OPT_GO, &go).map_err(io)?;
    let mut info = ExportInfo {
        size: 0,
        flags: 0,
        structured,
        min_block: 1,
    };
    let mut have_export = false;
    loop {
        let (kind, data) = read_option_reply(stream, OPT_GO)?;
        match kind {
            REP_ACK => break,
            REP_INFO if data.len() >= 2 => {
                let info_type = u16::from_be_bytes([data[0], data[1]]);
                if info_type == INFO_EXPORT && data.len() >= 12 {
                    info.size = u64::from_be_bytes(data[2..10].try_into().unwrap_or_default());
                    info.flags = u16::from_be_bytes([data[10], data[11]]);
                    have_export = true;
                } else if info_type == INFO_BLOCK_SIZE && data.len() >= 14 {
                    info.min_block = u32::from_be_bytes(data[2..6].try_into().unwrap_or_default());
                }
            }
            REP_INFO => {}
            REP_ERR_UNSUP => {
                // An older server: NBD_OPT_EXPORT_NAME, which answers with size and flags.
                send_option(stream, OPT_EXPORT_NAME, name).map_err(io)?;
                info.size = read_u64(stream).map_err(io)?;
                info.flags = read_u16(stream).map_err(io)?;
                if !no_zeroes {
                    skip(stream, 124).map_err(io)?;
                }
                return Ok(info);
            }
            REP_ERR_UNKNOWN => return Err(format!("the server has no export named {export:?}")),
            error if error & (1 << 31) != 0 => {
                let message = String::from_utf8_lossy(&data).into_owned();
                return Err(format!(
                    "the server refused export {export:?} (error {}){}",
                    error & !(1 << 31),
                    if message.is_empty() {
                        String::new()
                    } else {
                        format!(": {message}")
                    }
                ));
            }
            _ => {}
        }
    }
    if !have_export {
        return Err("the server ended the handshake without the export's size".into());
    }
    Ok(info)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A queue's completion list, filled by the reader thread: each completion with whether it is
/// final (a WRITE answered without FUA still needs a flush).
#[derive(Debug)]
struct Sink {
    done: Mutex<Vec<(Completion, bool)>>,
    posted: Condvar,
    waker: Waker,
}

impl Sink {
    fn post(&self, completion: Completion, last: bool) {
        let mut done = lock(&self.done);
        done.push((completion, last));
        // The first completion into an empty list wakes; the rest ride on it (see rbd).
        if done.len() == 1 {
            drop(done);
            self.posted.notify_all();
            self.waker.wake();
        }
    }
}

/// A request the server has (or is being sent).
#[derive(Debug)]
enum Entry {
    /// A READ, WRITE or FLUSH of a queue.
    Io {
        sink: Arc<Sink>,
        tag: u64,
        io: aoe_core::DiskIo,
        /// The frame; `None` while a WRITE is still being sent from it.
        frame: Option<Frame>,
        /// An error chunk of a structured reply.
        error: Option<IoError>,
        /// The whole reply came while the frame was out (a WRITE being sent).
        finished: Option<Result<(), IoError>>,
    },
    /// The flush that makes these completed writes durable (no FUA on the server).
    FlushFor {
        sink: Arc<Sink>,
        writes: Vec<Completion>,
    },
}

/// The connection state shared by the queues and the reader thread.
#[derive(Debug)]
struct Shared {
    address: NbdAddress,
    info: ExportInfo,
    /// The socket requests are written to; `None` while disconnected.
    writer: Mutex<Option<Stream>>,
    table: Mutex<HashMap<u64, Entry>>,
    next_cookie: AtomicU64,
    stop: AtomicBool,
}

fn not_connected() -> IoError {
    IoError {
        kind: ErrorKind::NotReady,
        errno: libc::ENOTCONN,
    }
}

fn nbd_error(errno: u32) -> IoError {
    let errno = i32::try_from(errno).unwrap_or(libc::EIO);
    let kind = match errno {
        libc::EIO => ErrorKind::Media,
        libc::EPERM | libc::EROFS => ErrorKind::WriteProtected,
        libc::EINVAL | libc::EOVERFLOW => ErrorKind::OutOfRange,
        libc::ESHUTDOWN => ErrorKind::NotReady,
        _ => ErrorKind::Other,
    };
    IoError { kind, errno }
}

impl Shared {
    /// Sends one request (header and, for a WRITE, `data`) in one write; on failure the
    /// connection is given up (the reader then fails what is in flight and reconnects).
    fn send(&self, header: &[u8; 28], data: &[u8]) -> Result<(), IoError> {
        let mut writer = lock(&self.writer);
        let Some(stream) = writer.as_mut() else {
            return Err(not_connected());
        };
        let mut slices = [io::IoSlice::new(header), io::IoSlice::new(data)];
        let mut slices: &mut [io::IoSlice<'_>] = if data.is_empty() {
            &mut slices[..1]
        } else {
            &mut slices[..]
        };
        while !slices.is_empty() {
            match stream.write_vectored(slices) {
                Ok(0) => return self.give_up(&mut writer),
                Ok(written) => io::IoSlice::advance_slices(&mut slices, written),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.give_up(&mut writer),
            }
        }
        Ok(())
    }

    fn give_up(&self, writer: &mut Option<Stream>) -> Result<(), IoError> {
        if let Some(stream) = writer.take() {
            stream.shutdown();
        }
        Err(not_connected())
    }

    /// Fails every request in flight (the connection is gone). WRITEs still being sent keep
    /// their entry, marked finished, for their worker to complete.
    fn fail_all(&self) {
        let mut table = lock(&self.table);
        let cookies: Vec<u64> = table.keys().copied().collect();
        for cookie in cookies {
            match table.remove(&cookie) {
                Some(Entry::Io {
                    sink,
                    tag,
                    io,
                    frame: Some(frame),
                    ..
                }) => sink.post(
                    Completion {
                        tag,
                        io,
                        result: Err(not_connected()),
                        frame,
                    },
                    true,
                ),
                Some(Entry::Io {
                    sink,
                    tag,
                    io,
                    frame: None,
                    error,
                    ..
                }) => {
                    table.insert(
                        cookie,
                        Entry::Io {
                            sink,
                            tag,
                            io,
                            frame: None,
                            error,
                            finished: Some(Err(not_connected())),
                        },
                    );
                }
                Some(Entry::FlushFor { sink, writes }) => {
                    for mut write in writes {
                        write.result = Err(not_connected());
                        sink.post(write, true);
                    }
                }
                None => {}
            }
        }
    }

    /// Finishes the request `cookie` with `result`, or marks it finished if its frame is out.
    fn finish(&self, cookie: u64, entry: Entry, result: Result<(), IoError>) {
        match entry {
            Entry::Io {
                sink,
                tag,
                io,
                frame: Some(frame),
                ..
            } => {
                let last = io.op != IoOp::Write || result.is_err() || self.info.fua();
                sink.post(
                    Completion {
                        tag,
                        io,
                        result,
                        frame,
                    },
                    last,
                );
            }
            Entry::Io {
                sink,
                tag,
                io,
                frame: None,
                error,
                ..
            } => {
                lock(&self.table).insert(
                    cookie,
                    Entry::Io {
                        sink,
                        tag,
                        io,
                        frame: None,
                        error,
                        finished: Some(result),
                    },
                );
            }
            Entry::FlushFor { sink, writes } => {
                for mut write in writes {
                    write.result = result;
                    sink.post(write, true);
                }
            }
        }
    }

    /// Reads replies until the connection fails.
    fn read_replies(&self, stream: &mut Stream) -> io::Result<()> {
        loop {
            let magic = read_u32(stream)?;
            match magic {
                SIMPLE_REPLY_MAGIC => {
                    let error = read_u32(stream)?;
                    let cookie = read_u64(stream)?;
                    let entry = lock(&self.table).remove(&cookie);
                    let Some(mut entry) = entry else {
                        return Err(protocol("a reply to an unknown request"));
                    };
                    let result = if error != 0 {
                        Err(nbd_error(error))
                    } else {
                        if let Entry::Io {
                            io,
                            frame: Some(frame),
                            ..
                        } = &mut entry
                            && io.op == IoOp::Read
                        {
                            stream.read_exact(&mut frame.buffer_mut()[io.data_range()])?;
                        }
                        Ok(())
                    };
                    self.finish(cookie, entry, result);
                }
                STRUCTURED_REPLY_MAGIC => {
                    let flags = read_u16(stream)?;
                    let kind = read_u16(stream)?;
                    let cookie = read_u64(stream)?;
                    let len = read_u32(stream)?;
                    let entry = lock(&self.table).remove(&cookie);
                    let Some(mut entry) = entry else {
                        return Err(protocol("a reply chunk for an unknown request"));
                    };
                    self.read_chunk(stream, &mut entry, kind, len)?;
                    if flags & REPLY_FLAG_DONE != 0 {
                        let result = match &entry {
                            Entry::Io {
                                error: Some(error), ..
                            } => Err(*error),
                            _ => Ok(()),
                        };
                        self.finish(cookie, entry, result);
                    } else {
                        lock(&self.table).insert(cookie, entry);
                    }
                }
                _ => return Err(protocol("a reply with a bad magic number")),
            }
        }
    }

    /// Reads one structured reply chunk of `len` octets into `entry`.
    fn read_chunk(
        &self,
        stream: &mut Stream,
        entry: &mut Entry,
        kind: u16,
        len: u32,
    ) -> io::Result<()> {
        let len = u64::from(len);
        match kind {
            REPLY_TYPE_NONE => skip(stream, len),
            REPLY_TYPE_OFFSET_DATA | REPLY_TYPE_OFFSET_HOLE => {
                let Entry::Io {
                    io,
                    frame: Some(frame),
                    ..
                } = entry
                else {
                    return Err(protocol("data for a request that reads nothing"));
                };
                if io.op != IoOp::Read || len < 8 {
                    return Err(protocol("data for a request that reads nothing"));
                }
                let offset = read_u64(stream)?;
                let count = if kind == REPLY_TYPE_OFFSET_DATA {
                    len - 8
                } else {
                    u64::from(read_u32(stream)?)
                };
                let start = offset
                    .checked_sub(io.byte_offset())
                    .filter(|s| s + count <= io.byte_len() as u64)
                    .ok_or_else(|| protocol("a chunk outside the request"))?;
                let range = io.data_range();
                let from = range.start + usize::try_from(start).unwrap_or(usize::MAX);
                let to = from + usize::try_from(count).unwrap_or(usize::MAX);
                let target = &mut frame.buffer_mut()[from..to];
                if kind == REPLY_TYPE_OFFSET_DATA {
                    stream.read_exact(target)
                } else {
                    target.fill(0);
                    Ok(())
                }
            }
            error_kind if error_kind & REPLY_TYPE_ERROR_BIT != 0 => {
                if len < 6 {
                    return Err(protocol("a short error chunk"));
                }
                let errno = read_u32(stream)?;
                skip(stream, len - 4)?;
                if let Entry::Io { error, .. } = entry {
                    *error = Some(nbd_error(errno));
                }
                Ok(())
            }
            _ => skip(stream, len),
        }
    }

    /// The reader thread: replies until the connection fails, then fail what was in flight
    /// and connect again, until the storage is dropped.
    fn run_reader(self: Arc<Shared>, mut stream: Stream) {
        loop {
            let result = self.read_replies(&mut stream);
            if let Some(stream) = lock(&self.writer).take() {
                stream.shutdown();
            }
            self.fail_all();
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            log::error!(
                "{}: connection lost ({}); requests fail until it is back",
                self.address,
                result
                    .err()
                    .map_or_else(|| "closed".into(), |e| e.to_string())
            );
            stream = loop {
                std::thread::sleep(RECONNECT_INTERVAL);
                if self.stop.load(Ordering::Acquire) {
                    return;
                }
                match connect(&self.address) {
                    Ok((stream, info)) if info.size == self.info.size => break stream,
                    Ok((stream, info)) => {
                        stream.shutdown();
                        log::error!(
                            "{}: the export is now {} bytes, was {}; not serving it",
                            self.address,
                            info.size,
                            self.info.size
                        );
                    }
                    Err(error) => log::debug!("{}: not yet: {error}", self.address),
                }
            };
            match stream.try_clone() {
                Ok(writer) => {
                    *lock(&self.writer) = Some(writer);
                    log::info!("{}: connected again", self.address);
                }
                Err(error) => log::error!("{}: {error}", self.address),
            }
        }
    }
}

fn protocol(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the server sent {what}"),
    )
}

/// Connects and shakes hands.
fn connect(address: &NbdAddress) -> Result<(Stream, ExportInfo), String> {
    let mut stream = Stream::connect(&address.transport)
        .map_err(|error| format!("cannot connect to {address}: {error}"))?;
    stream
        .set_timeouts(Some(Duration::from_secs(10)), Some(SEND_TIMEOUT))
        .map_err(|error| error.to_string())?;
    let info =
        handshake(&mut stream, &address.export).map_err(|error| format!("{address}: {error}"))?;
    stream
        .set_timeouts(None, Some(SEND_TIMEOUT))
        .map_err(|error| error.to_string())?;
    Ok((stream, info))
}

/// How to open an NBD export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NbdOptions {
    /// Refuse writes.
    pub read_only: bool,
}

/// An NBD export behind the storage seam; see the [module docs](self).
#[derive(Debug)]
pub struct NbdStorage {
    shared: Arc<Shared>,
    capabilities: Capabilities,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl NbdStorage {
    /// Connects, shakes hands and starts the reader thread.
    ///
    /// # Errors
    /// When the server cannot be reached, refuses the export, needs blocks larger than a
    /// sector, or (writable) can make no write durable; worded for a person.
    pub fn open(address: &NbdAddress, options: NbdOptions) -> Result<NbdStorage, String> {
        let (stream, info) = connect(address)?;
        if usize::try_from(info.min_block).unwrap_or(usize::MAX) > SECTOR_SIZE {
            return Err(format!(
                "{address}: the server needs blocks of {} bytes; AoE writes 512-byte sectors",
                info.min_block
            ));
        }
        let read_only = options.read_only || info.read_only();
        if !read_only && !info.fua() && !info.flush() {
            return Err(format!(
                "{address}: the server offers neither FUA nor FLUSH, so no write could be made \
                 durable; export it read-only (-r) or enable flushing on the server"
            ));
        }
        let sectors = info.size / SECTOR_SIZE as u64;
        if sectors == 0 {
            return Err(format!(
                "{address}: the export is {} bytes, smaller than one 512-byte sector",
                info.size
            ));
        }
        let writer = stream.try_clone().map_err(|error| error.to_string())?;
        let shared = Arc::new(Shared {
            address: address.clone(),
            info,
            writer: Mutex::new(Some(writer)),
            table: Mutex::new(HashMap::with_capacity(QUEUE_DEPTH)),
            next_cookie: AtomicU64::new(1),
            stop: AtomicBool::new(false),
        });
        let reader_shared = Arc::clone(&shared);
        let reader = std::thread::Builder::new()
            .name("nbd reader".into())
            .spawn(move || reader_shared.run_reader(stream))
            .map_err(|error| format!("cannot start a thread: {error}"))?;
        Ok(NbdStorage {
            shared,
            capabilities: Capabilities {
                sectors,
                read_only,
                durability: Durability::Stable,
                queue_depth: QUEUE_DEPTH,
                completes_inline: false,
            },
            reader: Some(reader),
        })
    }

    /// What the handshake said about the export.
    pub fn info(&self) -> ExportInfo {
        self.shared.info
    }

    /// True while connected to the server.
    pub fn connected(&self) -> bool {
        lock(&self.shared.writer).is_some()
    }
}

impl Drop for NbdStorage {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        let mut disconnect = [0u8; 28];
        request_header(&mut disconnect, CMD_DISC, 0, 0, 0, 0);
        let _ = self.shared.send(&disconnect, &[]);
        if let Some(stream) = lock(&self.shared.writer).take() {
            stream.shutdown();
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

fn request_header(
    header: &mut [u8; 28],
    command: u16,
    flags: u16,
    cookie: u64,
    offset: u64,
    len: u32,
) {
    header[0..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
    header[4..6].copy_from_slice(&flags.to_be_bytes());
    header[6..8].copy_from_slice(&command.to_be_bytes());
    header[8..16].copy_from_slice(&cookie.to_be_bytes());
    header[16..24].copy_from_slice(&offset.to_be_bytes());
    header[24..28].copy_from_slice(&len.to_be_bytes());
}

impl Storage for NbdStorage {
    fn describe(&self) -> String {
        self.shared.address.to_string()
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn queue(&self, waker: &Waker) -> Result<Box<dyn IoQueue>, String> {
        Ok(Box::new(NbdQueue {
            shared: Arc::clone(&self.shared),
            sink: Arc::new(Sink {
                done: Mutex::new(Vec::with_capacity(QUEUE_DEPTH)),
                posted: Condvar::new(),
                waker: waker.clone(),
            }),
            submitted: Vec::with_capacity(QUEUE_DEPTH),
            done: Vec::with_capacity(QUEUE_DEPTH),
            awaiting_flush: Vec::new(),
            outstanding: 0,
            read_only: self.capabilities.read_only,
        }))
    }

    fn flush(&self) -> Result<(), IoError> {
        // Every completed write was sent with FUA or flushed before it completed.
        Ok(())
    }
}

/// A queue of an [`NbdStorage`].
#[derive(Debug)]
struct NbdQueue {
    shared: Arc<Shared>,
    sink: Arc<Sink>,
    submitted: Vec<Request>,
    done: Vec<Completion>,
    /// Completed writes waiting for the flush that makes them durable.
    awaiting_flush: Vec<Completion>,
    /// Requests taken by `submit` and not yet returned by `reap`.
    outstanding: usize,
    read_only: bool,
}

impl NbdQueue {
    fn cookie(&self) -> u64 {
        self.shared.next_cookie.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends one request; completes it at once if it cannot be sent.
    fn start(&mut self, request: Request) {
        let Request { tag, io, frame } = request;
        let info = self.shared.info;
        if io.op == IoOp::Write && self.read_only {
            self.done.push(Completion {
                tag,
                io,
                result: Err(IoError::of(ErrorKind::WriteProtected)),
                frame,
            });
            return;
        }
        if io.op == IoOp::Flush && !info.flush() {
            // Every write went with FUA: nothing is waiting to be made durable.
            self.done.push(Completion {
                tag,
                io,
                result: Ok(()),
                frame,
            });
            return;
        }
        let cookie = self.cookie();
        let (command, flags) = match io.op {
            IoOp::Read => (CMD_READ, 0),
            IoOp::Write => (CMD_WRITE, if info.fua() { CMD_FLAG_FUA } else { 0 }),
            IoOp::Flush => (CMD_FLUSH, 0),
        };
        let len = if io.op == IoOp::Flush {
            0
        } else {
            u32::try_from(io.byte_len()).unwrap_or(u32::MAX)
        };
        let offset = if io.op == IoOp::Flush {
            0
        } else {
            io.byte_offset()
        };
        let mut header = [0u8; 28];
        request_header(&mut header, command, flags, cookie, offset, len);
        let entry = |frame| Entry::Io {
            sink: Arc::clone(&self.sink),
            tag,
            io,
            frame,
            error: None,
            finished: None,
        };
        if io.op != IoOp::Write {
            // The reader may get the reply before `send` returns: the frame must be there.
            lock(&self.shared.table).insert(cookie, entry(Some(frame)));
            if let Err(error) = self.shared.send(&header, &[]) {
                self.reclaim(cookie, Err(error));
            }
            return;
        }
        lock(&self.shared.table).insert(cookie, entry(None));
        let sent = self.shared.send(&header, &frame.buffer()[io.data_range()]);
        let mut table = lock(&self.shared.table);
        match table.remove(&cookie) {
            Some(Entry::Io {
                finished: Some(result),
                ..
            }) => {
                drop(table);
                self.done_write(tag, io, result, frame);
            }
            Some(Entry::Io { sink, error, .. }) if sent.is_ok() => {
                table.insert(
                    cookie,
                    Entry::Io {
                        sink,
                        tag,
                        io,
                        frame: Some(frame),
                        error,
                        finished: None,
                    },
                );
            }
            _ => {
                drop(table);
                self.done.push(Completion {
                    tag,
                    io,
                    result: Err(sent.err().unwrap_or_else(not_connected)),
                    frame,
                });
            }
        }
    }

    /// Takes back the request `cookie` that could not be sent, if the reader has not already.
    fn reclaim(&mut self, cookie: u64, result: Result<(), IoError>) {
        let entry = lock(&self.shared.table).remove(&cookie);
        if let Some(Entry::Io {
            tag,
            io,
            frame: Some(frame),
            ..
        }) = entry
        {
            self.done.push(Completion {
                tag,
                io,
                result,
                frame,
            });
        }
    }

    /// A WRITE the server answered: done, or held for a flush when the server has no FUA.
    fn done_write(
        &mut self,
        tag: u64,
        io: aoe_core::DiskIo,
        result: Result<(), IoError>,
        frame: Frame,
    ) {
        let completion = Completion {
            tag,
            io,
            result,
            frame,
        };
        if completion.result.is_ok() && !self.shared.info.fua() {
            self.awaiting_flush.push(completion);
        } else {
            self.done.push(completion);
        }
    }

    /// Sends one flush for every write waiting for one.
    fn flush_waiting(&mut self) {
        if self.awaiting_flush.is_empty() {
            return;
        }
        let writes = std::mem::take(&mut self.awaiting_flush);
        let cookie = self.cookie();
        let mut header = [0u8; 28];
        request_header(&mut header, CMD_FLUSH, 0, cookie, 0, 0);
        lock(&self.shared.table).insert(
            cookie,
            Entry::FlushFor {
                sink: Arc::clone(&self.sink),
                writes,
            },
        );
        if let Err(error) = self.shared.send(&header, &[]) {
            let entry = lock(&self.shared.table).remove(&cookie);
            if let Some(Entry::FlushFor { writes, .. }) = entry {
                for mut write in writes {
                    write.result = Err(error);
                    self.done.push(write);
                }
            }
        }
    }

    /// Moves what the reader posted into `done` (holding writes that still need a flush),
    /// then sends one flush for the held writes.
    fn collect(&mut self) {
        let posted = std::mem::take(&mut *lock(&self.sink.done));
        for (completion, last) in posted {
            if last {
                self.done.push(completion);
            } else {
                self.awaiting_flush.push(completion);
            }
        }
        self.flush_waiting();
    }
}

impl IoQueue for NbdQueue {
    fn submit(&mut self, request: Request) -> Result<(), Request> {
        if self.outstanding >= QUEUE_DEPTH {
            return Err(request);
        }
        self.outstanding += 1;
        self.submitted.push(request);
        Ok(())
    }

    fn commit(&mut self) {
        let mut submitted = std::mem::take(&mut self.submitted);
        for request in submitted.drain(..) {
            self.start(request);
        }
        self.submitted = submitted;
    }

    fn reap(&mut self, completions: &mut Vec<Completion>) -> usize {
        self.collect();
        let count = self.done.len();
        self.outstanding -= count.min(self.outstanding);
        completions.append(&mut self.done);
        count
    }

    fn in_flight(&self) -> usize {
        self.outstanding
    }

    fn wait(&mut self, timeout: Duration) -> bool {
        if !self.done.is_empty() {
            return true;
        }
        if !self.awaiting_flush.is_empty() {
            self.flush_waiting();
        }
        let done = lock(&self.sink.done);
        let (done, _) = self
            .sink
            .posted
            .wait_timeout_while(done, timeout, |done| done.is_empty())
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        !done.is_empty()
    }
}
