//! `aoe-null-target`: the benchmark's yardstick, not a product. An AoE target on a RAM disk
//! that answers with the fewest system calls the kernel's packet-socket path allows: one
//! `recvmmsg(2)` that waits for and takes a batch, the engine (`aoe_core::Target::handle`) for
//! each frame, one `sendmmsg(2)` for the batch's replies. No storage seam, no ring, no
//! histograms: what is left is the socket path's ceiling on this machine.
//!
//! ```text
//! aoe-null-target [-b bufcnt] shelf slot netif sectors
//! ```
//!
//! Linux only; runs until killed (SIGTERM); the disk starts zeroed and is forgotten on exit.

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    use aoe_core::disk::MemDisk;
    use aoe_core::{Config, Port, Target};
    use aoe_net::{Frame, Link, PacketLink};
    use std::io::Write;

    let args: Vec<String> = std::env::args().skip(1).collect();
    let (buffer_count, rest) = match args.first().map(String::as_str) {
        Some("-b") if args.len() > 1 => (args[1].parse::<u16>().ok(), &args[2..]),
        _ => (Some(64), &args[..]),
    };
    let parsed = match (buffer_count, rest) {
        (Some(buffer_count), [shelf, slot, netif, sectors]) => {
            match (
                shelf.parse::<u16>(),
                slot.parse::<u8>(),
                sectors.parse::<usize>(),
            ) {
                (Ok(shelf), Ok(slot), Ok(sectors)) if sectors > 0 => {
                    Some((buffer_count, shelf, slot, netif.clone(), sectors))
                }
                _ => None,
            }
        }
        _ => None,
    };
    let Some((buffer_count, shelf, slot, netif, sectors)) = parsed else {
        let _ = writeln!(
            std::io::stderr(),
            "usage: aoe-null-target [-b bufcnt] shelf slot netif sectors"
        );
        return std::process::ExitCode::FAILURE;
    };
    let mut link = match PacketLink::open(&netif, 1024) {
        Ok(link) => link,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "aoe-null-target: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mtu = link.mtu().unwrap_or(1500);
    let _ = link.set_buffer_bytes(
        aoe_net::buffer_bytes_for(1024, mtu),
        aoe_net::buffer_bytes_for(1024, mtu),
    );
    let mut config = Config::new(shelf, slot);
    config.max_frame_len = aoe_net::frame::POOL_FRAME_CAPACITY;
    config.buffer_count = buffer_count;
    let Ok(mut target) = Target::new(config, MemDisk::new(vec![0u8; sectors * 512])) else {
        let _ = writeln!(std::io::stderr(), "aoe-null-target: bad configuration");
        return std::process::ExitCode::FAILURE;
    };
    let _ = writeln!(
        std::io::stdout(),
        "pid {}: e{shelf}.{slot}, {sectors} sectors in RAM",
        std::process::id()
    );
    let mut rx: Vec<Frame> = Vec::with_capacity(64);
    let mut tx: Vec<Frame> = Vec::with_capacity(64);
    let mut mtu_checked = std::time::Instant::now();
    let mut port = Port::new(link.mac(), mtu);
    loop {
        match link.recv_wait(&mut rx, 64, Some(std::time::Duration::from_secs(1))) {
            Ok(_) => {}
            Err(error) => {
                let _ = writeln!(std::io::stderr(), "aoe-null-target: {error}");
                return std::process::ExitCode::FAILURE;
            }
        }
        if mtu_checked.elapsed() > std::time::Duration::from_secs(1) {
            port = Port::new(link.mac(), link.mtu().unwrap_or(mtu));
            mtu_checked = std::time::Instant::now();
        }
        for request in rx.drain(..) {
            let Some(mut reply) = link.alloc() else {
                break;
            };
            if let Some(len) = target.handle(&port, request.as_slice(), reply.buffer_mut()) {
                reply.set_len(len);
                tx.push(reply);
            }
        }
        if !tx.is_empty() {
            let _ = link.send(&mut tx);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn main() -> std::process::ExitCode {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "aoe-null-target runs on Linux only (it measures the Linux socket path)"
    );
    std::process::ExitCode::FAILURE
}
