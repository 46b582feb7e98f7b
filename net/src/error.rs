//! Errors of the raw-frame layer, worded for the person who runs the program.

use std::fmt;
use std::io;

/// Why a link could not be opened or used.
#[derive(Debug)]
#[non_exhaustive]
pub enum NetError {
    /// No interface of that name exists (in this network namespace).
    NoSuchInterface(String),
    /// The interface exists but is administratively down (`ip link set NAME up`).
    InterfaceDown(String),
    /// The name is empty, too long (more than 15 octets) or contains a NUL.
    BadInterfaceName(String),
    /// The process may not open raw sockets or TAP devices.
    NoPermission {
        /// The interface.
        interface: String,
        /// What was refused.
        what: &'static str,
        /// The capability that would allow it.
        capability: &'static str,
    },
    /// Any other failure, with the step that failed.
    Io {
        /// The interface.
        interface: String,
        /// The step, e.g. "bind the packet socket".
        step: &'static str,
        /// The operating system's error.
        source: io::Error,
    },
}

impl NetError {
    /// Wraps an OS error of `step` on `interface`, turning `EPERM`/`EACCES` into
    /// [`NetError::NoPermission`] and `ENODEV`/`ENXIO` into [`NetError::NoSuchInterface`].
    pub(crate) fn os(interface: &str, step: &'static str, source: io::Error) -> NetError {
        match source.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => NetError::NoPermission {
                interface: interface.to_owned(),
                what: step,
                capability: "CAP_NET_RAW",
            },
            Some(libc::ENODEV | libc::ENXIO) => NetError::NoSuchInterface(interface.to_owned()),
            _ => NetError::Io {
                interface: interface.to_owned(),
                step,
                source,
            },
        }
    }

    /// The last OS error of `step`.
    pub(crate) fn last(interface: &str, step: &'static str) -> NetError {
        NetError::os(interface, step, io::Error::last_os_error())
    }
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::NoSuchInterface(name) => write!(f, "no network interface named {name:?}"),
            NetError::InterfaceDown(name) => {
                write!(f, "interface {name:?} is down (ip link set {name} up)")
            }
            NetError::BadInterfaceName(name) => write!(
                f,
                "{name:?} is not a valid interface name (1 to 15 characters, no NUL)"
            ),
            NetError::NoPermission {
                interface,
                what,
                capability,
            } => write!(
                f,
                "no permission to {what} on {interface:?}: run as root or grant {capability}"
            ),
            NetError::Io {
                interface,
                step,
                source,
            } => write!(f, "cannot {step} on {interface:?}: {source}"),
        }
    }
}

impl std::error::Error for NetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NetError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn os_errors_map_to_the_kinds_people_act_on() {
        let denied = NetError::os(
            "veth0",
            "open a raw socket",
            io::Error::from_raw_os_error(libc::EPERM),
        );
        assert!(matches!(denied, NetError::NoPermission { .. }));
        assert!(denied.to_string().contains("CAP_NET_RAW"));
        let gone = NetError::os("veth0", "bind", io::Error::from_raw_os_error(libc::ENODEV));
        assert!(matches!(gone, NetError::NoSuchInterface(ref name) if name == "veth0"));
        let other = NetError::os("veth0", "bind", io::Error::from_raw_os_error(libc::EINVAL));
        assert!(other.to_string().starts_with("cannot bind on \"veth0\""));
    }
}
