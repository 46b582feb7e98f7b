//! One QEMU run of the firmware: the datagram netdev (one Ethernet frame per datagram), the
//! monitor (register reads, RAM dumps) and the gdbstub (to hang or crash the CPU on purpose).

use crate::options::Options;
use crate::{QEMU_NIC_MAC, Result};
use aoe_testkit::reply::Reply;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One QEMU run of the firmware.
pub(crate) struct Qemu {
    pub(crate) child: Child,
    pub(crate) socket: UnixDatagram,
    pub(crate) qemu_socket: PathBuf,
    pub(crate) monitor: PathBuf,
    pub(crate) gdb: PathBuf,
    pub(crate) started: Instant,
    pub(crate) log: PathBuf,
}

impl Qemu {
    pub(crate) fn start(options: &Options, image: &Path, run: &str) -> Result<Qemu> {
        let dir = &options.workdir;
        let peer = dir.join(format!("{run}-peer.sock"));
        let qemu_socket = dir.join(format!("{run}-qemu.sock"));
        let monitor = dir.join(format!("{run}-monitor.sock"));
        let gdb = dir.join(format!("{run}-gdb.sock"));
        for path in [&peer, &qemu_socket, &monitor, &gdb] {
            let _ = fs::remove_file(path);
        }
        // The peer binds first: QEMU drops frames sent to a socket nobody listens on.
        let socket = UnixDatagram::bind(&peer).map_err(|e| format!("bind {peer:?}: {e}"))?;
        let log = dir.join(format!("{run}.defmt"));
        let stdout = File::create(&log).map_err(|e| format!("create {log:?}: {e}"))?;
        let stderr = File::create(dir.join(format!("{run}.stderr")))
            .map_err(|e| format!("create stderr log: {e}"))?;
        let netdev = format!(
            "dgram,id=n0,local.type=unix,local.path={},remote.type=unix,remote.path={}",
            qemu_socket.display(),
            peer.display()
        );
        let started = Instant::now();
        let child = Command::new(&options.qemu)
            .args(["-M", "lm3s6965evb", "-display", "none", "-serial", "none"])
            .args([
                "-semihosting-config",
                "enable=on,target=native",
                "-no-reboot",
            ])
            // An explicit silent audio backend: QEMU then loads no audio module (a QEMU
            // unpacked next to another version's modules would refuse to).
            .args(["-audiodev", "none,id=snd0"])
            .arg("-monitor")
            .arg(format!("unix:{},server=on,wait=off", monitor.display()))
            .arg("-gdb")
            .arg(format!("unix:{},server=on,wait=off", gdb.display()))
            .arg("-drive")
            .arg(format!("if=sd,format=raw,file={}", image.display()))
            .args(["-netdev", &netdev])
            .arg("-net")
            .arg(format!(
                "nic,netdev=n0,model=stellaris,macaddr={QEMU_NIC_MAC}"
            ))
            .arg("-kernel")
            .arg(&options.firmware)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", options.qemu))?;
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .map_err(|e| e.to_string())?;
        // A full socket means QEMU stopped taking frames: fail instead of waiting forever.
        socket
            .set_write_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        Ok(Qemu {
            child,
            socket,
            qemu_socket,
            monitor,
            gdb,
            started,
            log,
        })
    }

    pub(crate) fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub(crate) fn send(&self, frame: &[u8]) -> Result<()> {
        // QEMU creates its socket as it starts; retry briefly.
        let mut last_error = None;
        for _ in 0..100 {
            match self.socket.send_to(frame, &self.qemu_socket) {
                Ok(_) => return Ok(()),
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    return Err("QEMU stopped taking frames for 10 s".into());
                }
                Err(error) => last_error = Some(error),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("cannot send to QEMU's socket: {last_error:?}"))
    }

    /// The next AoE frame from the blade before `deadline`.
    pub(crate) fn receive(&self, deadline: Instant) -> Option<Reply> {
        let mut buffer = [0u8; 2048];
        while Instant::now() < deadline {
            if let Ok(len) = self.socket.recv(&mut buffer)
                && len >= 24
                && buffer[12..14] == [0x88, 0xA2]
            {
                return Some(Reply {
                    bytes: buffer[..len].to_vec(),
                });
            }
        }
        None
    }

    /// Discards whatever frames are waiting, without blocking.
    pub(crate) fn drain(&self) {
        let mut buffer = [0u8; 2048];
        if self.socket.set_nonblocking(true).is_ok() {
            while self.socket.recv(&mut buffer).is_ok() {}
            let _ = self.socket.set_nonblocking(false);
        }
    }

    /// Sends `frame` and waits for the reply carrying `tag`, retrying twice.
    pub(crate) fn exchange(&self, frame: &[u8], tag: u32) -> Result<Reply> {
        for _ in 0..3 {
            self.send(frame)?;
            let deadline = Instant::now() + Duration::from_secs(2);
            while let Some(reply) = self.receive(deadline) {
                if reply.is_response() && reply.tag() == tag {
                    return Ok(reply);
                }
            }
        }
        Err(format!("no reply to tag {tag:#010x}"))
    }

    /// Sends `frame` and checks that nothing answers `tag` within half a second.
    pub(crate) fn expect_silence(&self, frame: &[u8], tag: u32) -> Result<()> {
        self.send(frame)?;
        let deadline = Instant::now() + Duration::from_millis(500);
        while let Some(reply) = self.receive(deadline) {
            ensure!(
                !(reply.is_response() && reply.tag() == tag),
                "tag {tag:#010x} was answered but should have been ignored"
            );
        }
        Ok(())
    }

    /// Sends an HMP command to the monitor, waits for its prompt, returns what it printed.
    pub(crate) fn monitor(&self, command: &str) -> Result<String> {
        let mut stream = UnixStream::connect(&self.monitor).map_err(|e| format!("monitor: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let mut seen = Vec::new();
        let wait_prompt = |stream: &mut UnixStream, seen: &mut Vec<u8>| -> Result<()> {
            let mut chunk = [0u8; 512];
            while !seen.ends_with(b"(qemu) ") {
                let len = stream
                    .read(&mut chunk)
                    .map_err(|e| format!("monitor: {e}"))?;
                ensure!(len > 0, "monitor closed");
                seen.extend_from_slice(&chunk[..len]);
            }
            Ok(())
        };
        wait_prompt(&mut stream, &mut seen)?;
        seen.clear();
        stream
            .write_all(format!("{command}\n").as_bytes())
            .map_err(|e| format!("monitor: {e}"))?;
        wait_prompt(&mut stream, &mut seen)?;
        Ok(String::from_utf8_lossy(&seen).into_owned())
    }

    /// One 32-bit word of guest physical memory (a device register), read by the monitor.
    pub(crate) fn read_word(&self, address: u32) -> Result<u32> {
        let output = self.monitor(&format!("xp /1wx {address:#x}"))?;
        output
            .split_whitespace()
            .find_map(|word| u32::from_str_radix(word.strip_prefix("0x")?, 16).ok())
            .ok_or(format!("cannot parse the monitor's answer {output:?}"))
    }

    /// Hangs the firmware: through QEMU's gdbstub, writes a Thumb `b .` at `address` (unused,
    /// painted stack) and points the program counter at it, then lets the CPU run.
    pub(crate) fn hang_cpu(&self, address: u32) -> Result<()> {
        self.jump(address, true)
    }

    /// Through QEMU's gdbstub, points the program counter at `address` (after writing a Thumb
    /// `b .` there if `write_loop`), then lets the CPU run.
    pub(crate) fn jump(&self, address: u32, write_loop: bool) -> Result<()> {
        let mut stream = UnixStream::connect(&self.gdb).map_err(|e| format!("gdbstub: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        // Connecting stops the VM; `?` confirms it. QEMU may report the stop twice: drain.
        gdb_packet(&mut stream, "?", true)?;
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| e.to_string())?;
        let mut stale = [0u8; 256];
        while matches!(stream.read(&mut stale), Ok(n) if n > 0) {}
        let _ = stream.write_all(b"+");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        if write_loop {
            let reply = gdb_packet(&mut stream, &format!("M{address:x},2:fee7"), true)?;
            ensure!(reply == "OK", "gdbstub memory write: {reply}");
        }
        // All registers, r0..r15 first (8 hex digits each, little-endian); PC is r15. (QEMU
        // takes the single-register `P` only from clients that negotiated XML descriptions.)
        let registers = gdb_packet(&mut stream, "g", true)?;
        ensure!(
            registers.len() >= 128 && registers.is_ascii(),
            "gdbstub register read: {registers}"
        );
        let pc: String = address
            .to_le_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let registers = format!("{}{pc}{}", &registers[..120], &registers[128..]);
        let reply = gdb_packet(&mut stream, &format!("G{registers}"), true)?;
        ensure!(reply == "OK", "gdbstub register write: {reply}");
        gdb_packet(&mut stream, "c", false)?;
        Ok(())
    }

    /// Waits up to `limit` for QEMU to exit; returns how long it took.
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if !self.running() {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Power cut: kill QEMU without letting anything flush.
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one GDB remote-protocol packet and, if `reply`, returns the answer's payload.
pub(crate) fn gdb_packet(stream: &mut UnixStream, body: &str, reply: bool) -> Result<String> {
    let checksum = body.bytes().fold(0u8, |sum, b| sum.wrapping_add(b));
    stream
        .write_all(format!("${body}#{checksum:02x}").as_bytes())
        .map_err(|e| format!("gdbstub: {e}"))?;
    let mut received = Vec::new();
    let mut byte = [0u8; 1];
    // The acknowledgement, then (if asked) one `$payload#xx` packet.
    loop {
        stream
            .read_exact(&mut byte)
            .map_err(|e| format!("gdbstub: {e}"))?;
        match byte[0] {
            b'+' if !reply => return Ok(String::new()),
            b'+' => {}
            b'-' => return Err("gdbstub refused a packet".into()),
            b'$' => received.clear(),
            b'#' => {
                let mut sum = [0u8; 2];
                stream
                    .read_exact(&mut sum)
                    .map_err(|e| format!("gdbstub: {e}"))?;
                stream
                    .write_all(b"+")
                    .map_err(|e| format!("gdbstub: {e}"))?;
                return Ok(String::from_utf8_lossy(&received).into_owned());
            }
            other => received.push(other),
        }
    }
}
