//! systemd's readiness protocol (`sd_notify`), without libsystemd: one datagram of
//! `KEY=VALUE` lines to the unix socket named by `NOTIFY_SOCKET` (a path, or an abstract name
//! written with a leading `@`).
//!
//! Guarantee: without `NOTIFY_SOCKET` (not run by systemd as `Type=notify`) nothing happens,
//! and a failure to notify is never fatal: the service would only be reported late.

use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends `state` (e.g. `READY=1\nSTATUS=serving 2 exports`) to systemd, if it listens.
pub fn notify(state: &str) {
    if let Some(socket) = std::env::var_os("NOTIFY_SOCKET")
        && let Err(error) = notify_to(&socket.to_string_lossy(), state)
    {
        log::debug!("sd_notify to {socket:?} failed: {error}");
    }
}

/// Sends `state` to the notification socket `socket`.
///
/// # Errors
/// When the socket cannot be reached.
pub fn notify_to(socket: &str, state: &str) -> std::io::Result<()> {
    let address = match socket.strip_prefix('@') {
        #[cfg(target_os = "linux")]
        Some(name) => {
            use std::os::linux::net::SocketAddrExt as _;
            SocketAddr::from_abstract_name(name.as_bytes())?
        }
        // Abstract sockets are Linux's (as is systemd).
        #[cfg(not(target_os = "linux"))]
        Some(_) => return Err(std::io::Error::from(std::io::ErrorKind::Unsupported)),
        None => SocketAddr::from_pathname(socket)?,
    };
    let sender = UnixDatagram::unbound()?;
    sender.send_to_addr(state.as_bytes(), &address)?;
    Ok(())
}

#[cfg(test)]
mod test {
    use super::*;
    use aoe_testkit::scratch::Scratch;

    #[test]
    fn notifications_reach_path_and_abstract_sockets() {
        let scratch = Scratch::new("notify");
        let path = scratch.dir.join("notify.sock");
        let receiver = UnixDatagram::bind(&path).unwrap();
        notify_to(
            path.to_str().unwrap(),
            "READY=1\nSTATUS=serving 1 export(s)",
        )
        .unwrap();
        let mut buf = [0u8; 256];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=serving 1 export(s)");

        use std::os::linux::net::SocketAddrExt as _;
        let name = format!("vblade-rs-notify-test-{}", std::process::id());
        let receiver =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        notify_to(&format!("@{name}"), "STOPPING=1").unwrap();
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
        assert!(notify_to(scratch.dir.join("none").to_str().unwrap(), "READY=1").is_err());
    }
}
